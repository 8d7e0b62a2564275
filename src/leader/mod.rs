//! Leader election on a coordination.k8s.io Lease, with fencing: with any
//! number of replicas exactly one writes to D365 (one writer per order).
//!
//! The leader renews the Lease every `--lease-renew-interval`; each renewal
//! that succeeds lets it write for `--lease-duration-seconds` minus
//! `--lease-fence-margin`, counted on its own monotonic clock from when the
//! renewal was sent ([`Fence`]). A standby takes over only after seeing
//! the Lease unchanged for a full lease duration on its clock. So a leader
//! cut off from the API server has stopped writing a margin before any
//! standby can start. Past its deadline the leader stops writing at once,
//! drops readiness and exits non-zero (see `main`): Kubernetes restarts it
//! and it comes back as a standby.
//!
//! The margin covers what the two clocks cannot agree on: their rates
//! (NTP-disciplined clocks drift well under 0.1 %, 15 ms over 15 s; a
//! paused or overloaded VM more) and a write that passed the check just
//! before the deadline still being on its way to D365 (one request's
//! latency, typically well under a second). The default 3 s covers both
//! with room on a 15 s lease. A write that lands late anyway still carries
//! the `If-Match` of a fresh read: it fails with 412 if the new leader
//! wrote that order in between.

mod decide;
mod elector;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease as LeaseObject;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::d365::Fence;
use crate::metrics::Metrics;
use elector::{Elector, Role};

/// Leader-election flags.
#[derive(clap::Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Hold a Lease before reconciling, and write to D365 only while it is
    /// renewed (the chart always turns it on).
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "sales-order-operator")]
    pub lease_name: String,
    /// Namespace of the Lease; the chart sets it to the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Holder identity, also named in every D365 request's User-Agent; the
    /// pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a lease lasts without renewal: the failover time bound.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// How often the leader renews the Lease and a standby looks at it.
    #[arg(long, env = "LEASE_RENEW_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub lease_renew_interval: Duration,
    /// The leader stops writing this long before its Lease could expire
    /// (clock-rate skew, a write's latency to D365).
    #[arg(long, env = "LEASE_FENCE_MARGIN", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease_fence_margin: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "lease timing: the lease duration ({duration:?}) minus the fence margin ({margin:?}) must allow at least two renewals ({renew:?} apart)"
    )]
    Timing {
        duration: Duration,
        margin: Duration,
        renew: Duration,
    },
}

impl LeaderArgs {
    /// This replica's name: the flag, else `<hostname>-<pid>`.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into()),
                std::process::id()
            )
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds)
    }

    /// How long one renewal lets the leader write: the lease duration minus
    /// the margin, refused unless a failed renewal can be retried once
    /// before writes stop.
    pub fn write_validity(&self) -> Result<Duration, LeaderError> {
        let renew = self.lease_renew_interval;
        self.duration()
            .checked_sub(self.lease_fence_margin)
            .filter(|validity| !renew.is_zero() && *validity >= renew * 2)
            .ok_or(LeaderError::Timing {
                duration: self.duration(),
                margin: self.lease_fence_margin,
                renew,
            })
    }
}

/// A held lease, or nothing when election is off.
pub struct Lease {
    fence: Fence,
    state: Option<Held>,
}

struct Held {
    api: Api<LeaseObject>,
    name: String,
    identity: String,
    role: watch::Receiver<Role>,
    task: JoinHandle<()>,
}

/// Waits until this replica leads (returns at once when election is off).
/// Every `standby_ready` flag turns true while waiting (a standby is
/// healthy) and false again on election, until the watches sync.
pub async fn acquire(
    client: &kube::Client,
    args: &LeaderArgs,
    metrics: Arc<Metrics>,
    standby_ready: &[Arc<AtomicBool>],
) -> Result<Lease, LeaderError> {
    if !args.leader_elect {
        metrics.set_leader(&args.lease_name, true);
        return Ok(Lease {
            fence: Fence::open(),
            state: None,
        });
    }
    let fence = Fence::leased(args.write_validity()?);
    let identity = args.identity();
    let api = Api::namespaced(client.clone(), &args.lease_namespace);
    let (role_tx, mut role) = watch::channel(Role::Standby);
    let elector = Elector {
        api: api.clone(),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        duration: args.duration(),
        every: args.lease_renew_interval,
        fence: fence.clone(),
        role: role_tx,
    };
    let task = tokio::spawn(elector.run());
    set_all(standby_ready, true);
    metrics.set_leader(&args.lease_name, false);
    info!(%identity, lease = %args.lease_name, "waiting for leadership");
    // The elector never stops before leading: a standby retries for ever.
    let _ = role.wait_for(|r| *r == Role::Leader).await;
    set_all(standby_ready, false);
    metrics.set_leader(&args.lease_name, true);
    let deadline_ms = fence.deadline().map(|d| {
        d.saturating_duration_since(tokio::time::Instant::now())
            .as_millis() as u64
    });
    info!(%identity, lease = %args.lease_name, writes_allowed_for_ms = deadline_ms, "became leader");
    Ok(Lease {
        fence,
        state: Some(Held {
            api,
            name: args.lease_name.clone(),
            identity,
            role,
            task,
        }),
    })
}

fn set_all(flags: &[Arc<AtomicBool>], value: bool) {
    flags.iter().for_each(|r| r.store(value, Ordering::SeqCst));
}

impl Lease {
    /// What the D365 clients check before every write.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Resolves when this replica may no longer write (never when election
    /// is off): the Lease went to another replica, or was not renewed
    /// before the fence's deadline. The fence is closed by then.
    pub async fn lost(&self) -> String {
        let Some(held) = &self.state else {
            return std::future::pending().await;
        };
        let mut role = held.role.clone();
        // The elector's reason first: its revocation also ends `expired`.
        let why = tokio::select! {
            biased;
            lost = role.wait_for(|r| matches!(r, Role::Lost(_))) => match lost.as_deref() {
                Ok(Role::Lost(why)) => why.clone(),
                _ => "the lease loop stopped".to_owned(),
            },
            _ = self.fence.expired() => match self.fence.check() {
                Err(refused) => refused.to_string(),
                Ok(()) => "the write fence closed".to_owned(),
            },
        };
        self.fence.revoke();
        why
    }

    /// Stops writing, then gives the Lease up so a standby takes over at
    /// its next look instead of after a lease duration.
    pub async fn release(self) {
        self.fence.revoke();
        let Some(held) = self.state else { return };
        held.task.abort();
        let released = tokio::time::timeout(
            Duration::from_secs(5),
            elector::release(&held.api, &held.name, &held.identity),
        )
        .await;
        match released {
            Ok(Ok(())) => info!(lease = %held.name, "released the lease"),
            Ok(Err(error)) => {
                warn!(lease = %held.name, %error, "could not release the lease; a standby takes over when it expires")
            }
            Err(_) => {
                warn!(lease = %held.name, "releasing the lease timed out; a standby takes over when it expires")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        leader: LeaderArgs,
    }

    fn args(extra: &[&str]) -> LeaderArgs {
        let argv = ["operator"].iter().chain(extra);
        Cli::parse_from(argv).leader
    }

    #[test]
    fn defaults_write_for_the_lease_duration_minus_the_margin() {
        let a = args(&[]);
        assert!(!a.leader_elect);
        assert_eq!(a.lease_renew_interval, Duration::from_secs(2));
        assert_eq!(a.write_validity().unwrap(), Duration::from_secs(12));
        let short = args(&[
            "--lease-duration-seconds=5",
            "--lease-renew-interval=1s",
            "--lease-fence-margin=1500ms",
        ]);
        assert_eq!(short.write_validity().unwrap(), Duration::from_millis(3500));
    }

    #[test]
    fn a_margin_leaving_no_second_renewal_is_refused() {
        for bad in [
            &["--lease-duration-seconds=5", "--lease-fence-margin=6s"][..],
            &["--lease-duration-seconds=5", "--lease-fence-margin=4s"][..],
            &["--lease-duration-seconds=5", "--lease-renew-interval=3s"][..],
            &["--lease-renew-interval=0s"][..],
        ] {
            let err = args(bad).write_validity().unwrap_err();
            assert!(
                err.to_string().contains("at least two renewals"),
                "{bad:?}: {err}"
            );
        }
    }
}
