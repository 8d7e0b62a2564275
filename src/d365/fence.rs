//! Write permission: a replica may write to D365 only until a local
//! deadline, which its leader election moves forward on every successful
//! Lease renewal. The client checks it right before a PATCH or `$batch`
//! goes on the wire, so a leader cut off from the API server stops writing
//! by itself, whatever its caches still ask for.
//!
//! Knows nothing of Kubernetes: whoever renews calls [`Fence::renewed`];
//! the deadline runs on the monotonic clock (tokio's, so tests can pause
//! it), never on wall time, which can jump.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Shared by every client of the process; cheap to clone. The default is
/// [`Fence::open`]: without leader election nothing is fenced.
#[derive(Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

struct Inner {
    /// How long a renewal allows writes; `None` for an open fence.
    validity: Option<Duration>,
    /// Offsets below are nanoseconds after this instant.
    epoch: Instant,
    /// When the last renewal was sent; [`NEVER`] before the first.
    renewed: AtomicU64,
    revoked: AtomicBool,
    /// Wakes [`Fence::expired`] on a renewal or a revocation.
    changed: Notify,
}

const NEVER: u64 = u64::MAX;

/// Why a write was refused. Cheap to clone (one refusal may answer every
/// PATCH of a batch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fenced {
    #[error("not the leader: the lease was never acquired")]
    NeverAcquired,
    #[error(
        "not the leader any more: lease not renewed for {:.1}s (writes stop {:.1}s after a renewal)",
        since.as_secs_f64(),
        validity.as_secs_f64()
    )]
    Expired { since: Duration, validity: Duration },
    #[error("not the leader any more: the lease was lost or given up")]
    Revoked,
}

impl Default for Fence {
    fn default() -> Self {
        Self::open()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("validity", &self.inner.validity)
            .field("deadline", &self.deadline())
            .field("revoked", &self.inner.revoked.load(Ordering::SeqCst))
            .finish()
    }
}

impl Fence {
    /// Always allows writes: the process runs without leader election.
    pub fn open() -> Self {
        Self::build(None)
    }

    /// Refuses writes until [`Fence::renewed`]; each renewal allows them
    /// for `validity` (the lease duration minus a safety margin).
    pub fn leased(validity: Duration) -> Self {
        Self::build(Some(validity))
    }

    fn build(validity: Option<Duration>) -> Self {
        Self {
            inner: Arc::new(Inner {
                validity,
                epoch: Instant::now(),
                renewed: AtomicU64::new(NEVER),
                revoked: AtomicBool::new(false),
                changed: Notify::new(),
            }),
        }
    }

    /// The Lease was written by a request sent at `sent_at`: writes are
    /// allowed until `sent_at + validity`. Counting from the send, not the
    /// answer, errs on the safe side: the record others time out from is
    /// no older than that. Never moves the deadline back.
    pub fn renewed(&self, sent_at: Instant) {
        let offset = sent_at.saturating_duration_since(self.inner.epoch);
        let nanos = u64::try_from(offset.as_nanos()).unwrap_or(NEVER - 1);
        let _ = self
            .inner
            .renewed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |old| {
                (old == NEVER || old < nanos).then_some(nanos)
            });
        self.inner.changed.notify_waiters();
    }

    /// Refuses every write from now on, renewals or not: the lease was lost
    /// or released.
    pub fn revoke(&self) {
        self.inner.revoked.store(true, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    /// The last instant a write may start; `None` for an open fence, or a
    /// leased one never renewed.
    pub fn deadline(&self) -> Option<Instant> {
        let validity = self.inner.validity?;
        Some(self.renewed_at()? + validity)
    }

    /// Whether a write may be sent now.
    pub fn check(&self) -> Result<(), Fenced> {
        let Some(validity) = self.inner.validity else {
            return Ok(());
        };
        if self.inner.revoked.load(Ordering::SeqCst) {
            return Err(Fenced::Revoked);
        }
        let renewed = self.renewed_at().ok_or(Fenced::NeverAcquired)?;
        let now = Instant::now();
        if now < renewed + validity {
            return Ok(());
        }
        Err(Fenced::Expired {
            since: now - renewed,
            validity,
        })
    }

    /// Resolves once writes are refused for good or until a renewal: the
    /// deadline passed or the fence was revoked. Never for an open fence.
    pub async fn expired(&self) {
        if self.inner.validity.is_none() {
            return std::future::pending().await;
        }
        loop {
            // Created before the check, so a change in between still wakes it.
            let changed = self.inner.changed.notified();
            if let Err(Fenced::Expired { .. } | Fenced::Revoked) = self.check() {
                return;
            }
            match self.deadline() {
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    fn renewed_at(&self) -> Option<Instant> {
        let nanos = self.inner.renewed.load(Ordering::SeqCst);
        (nanos != NEVER).then(|| self.inner.epoch + Duration::from_nanos(nanos))
    }
}

#[cfg(test)]
#[path = "fence_tests.rs"]
mod tests;
