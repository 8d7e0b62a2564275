//! Client-side pacing shared by every order of one connection.
//!
//! D365's service protection is per environment, so the pacing is too: the
//! controller shares one client (and so one limiter) per connection. Three
//! gates, in order: a connection-wide pause set by a 429, a concurrency cap
//! (tokio semaphore), and a GCRA rate limit (governor).
//!
//! A pause is never waited out here: a request that finds the connection
//! paused, or sees a pause begin while it waits for a slot or the rate,
//! fails at once with the time left ([`Paused`]), so its caller can give
//! back what it holds (a reconcile slot) and come back when the pause ends.
//!
//! In adaptive mode the concurrency cap moves ([`Aimd`]): each answer
//! reports its latency and status as its permit is released, and permits
//! are withheld from (or given back to) the semaphore to follow the limit.

use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit, watch};
use tokio::time::Instant;

use super::aimd::Aimd;

pub(crate) struct Limiter {
    rate: DefaultDirectRateLimiter,
    slots: Semaphore,
    /// End of the current (or last) pause; a watch channel so waiters
    /// learn at once that a pause began.
    paused_until: watch::Sender<Option<Instant>>,
    /// Adaptive mode only: the moving limit.
    adaptive: Option<Mutex<Adaptive>>,
}

struct Adaptive {
    aimd: Aimd,
    ceiling: u32,
    in_flight: u32,
    /// Permits taken out of the semaphore: `ceiling - limit` once settled.
    withheld: u32,
}

/// Held for the duration of one HTTP exchange.
pub(crate) struct Permit<'a> {
    slot: Option<SemaphorePermit<'a>>,
    limiter: &'a Limiter,
    sent: Instant,
    status: Option<u16>,
}

impl Permit<'_> {
    /// The answer's status, for the adaptive limit: a 429 backs off, any
    /// other answer but a 401 or 3xx (answered before any work, so their
    /// latency says nothing of the load) is a latency sample. A permit
    /// released without a status (transport failure) teaches nothing.
    pub(crate) fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let (Some(slot), Some(adaptive)) = (self.slot.take(), &self.limiter.adaptive) {
            let mut a = adaptive.lock().unwrap_or_else(PoisonError::into_inner);
            a.finish(self.sent, self.status);
            a.settle(slot, &self.limiter.slots);
        }
    }
}

impl Adaptive {
    fn finish(&mut self, sent: Instant, status: Option<u16>) {
        let now = Instant::now();
        match status {
            Some(429) => self.aimd.on_throttle(now),
            Some(s) if s != 401 && !(300..400).contains(&s) => {
                self.aimd.on_answer(now, now - sent, self.in_flight);
            }
            _ => {}
        }
        self.in_flight -= 1;
    }

    /// Returns `slot` to the semaphore, or keeps it out while more are
    /// out than the limit; gives back withheld ones when the limit rose.
    fn settle(&mut self, slot: SemaphorePermit<'_>, slots: &Semaphore) {
        let want = self.ceiling - self.aimd.limit();
        if self.withheld < want {
            slot.forget();
            self.withheld += 1;
        } else {
            drop(slot);
            if self.withheld > want {
                slots.add_permits((self.withheld - want) as usize);
                self.withheld = want;
            }
        }
    }
}

/// The connection is paused after a 429: nothing may be sent for `left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paused {
    pub left: Duration,
}

impl Limiter {
    /// `per_second` requests per second, at most `concurrent` in flight. The
    /// burst is capped at `concurrent`: after a pause the waiting requests
    /// resume a few at a time rather than all at once ("ramp up
    /// gradually" [doc]).
    pub(crate) fn new(per_second: NonZeroU32, concurrent: NonZeroU32) -> Self {
        let burst = per_second.min(concurrent);
        Self {
            rate: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            slots: Semaphore::new(concurrent.get() as usize),
            paused_until: watch::Sender::new(None),
            adaptive: None,
        }
    }

    /// Like [`Limiter::new`], but the concurrency cap adapts ([`Aimd`])
    /// between 1 and `ceiling`; `per_second` still caps the rate.
    pub(crate) fn adaptive(per_second: NonZeroU32, ceiling: NonZeroU32) -> Self {
        let aimd = Aimd::new(ceiling);
        let start = aimd.limit();
        Self {
            slots: Semaphore::new(start as usize),
            adaptive: Some(Mutex::new(Adaptive {
                aimd,
                ceiling: ceiling.get(),
                in_flight: 0,
                withheld: ceiling.get() - start,
            })),
            ..Self::new(per_second, ceiling)
        }
    }

    /// Requests allowed in flight now: the adaptive limit, or the fixed cap.
    pub(crate) fn concurrency_limit(&self) -> Option<u32> {
        let a = self.adaptive.as_ref()?;
        Some(
            a.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .aimd
                .limit(),
        )
    }

    /// Waits for a slot and the rate, or fails at once when the connection
    /// is paused now or becomes paused while waiting: nothing leaves during
    /// a 429 pause, and nobody waits one out here.
    pub(crate) async fn acquire(&self) -> Result<Permit<'_>, Paused> {
        let mut pauses = self.paused_until.subscribe();
        loop {
            let ready = async {
                let slot = self
                    .slots
                    .acquire()
                    .await
                    .expect("limiter semaphore is never closed");
                self.rate.until_ready().await;
                slot
            };
            let slot = tokio::select! {
                biased;
                _ = pauses.wait_for(|until| in_future(*until)) => None,
                slot = ready => Some(slot),
            };
            if let Some(left) = self.paused_for() {
                return Err(Paused { left });
            }
            // A pause that ended just now is no reason to give up.
            if let Some(slot) = slot {
                if let Some(a) = &self.adaptive {
                    a.lock().unwrap_or_else(PoisonError::into_inner).in_flight += 1;
                }
                return Ok(Permit {
                    slot: Some(slot),
                    limiter: self,
                    sent: Instant::now(),
                    status: None,
                });
            }
        }
    }

    /// Resolves once the connection is paused (at once if it is now).
    pub(crate) async fn until_paused(&self) {
        let mut pauses = self.paused_until.subscribe();
        // Err only if the sender is gone, and `self` owns it.
        let _ = pauses.wait_for(|until| in_future(*until)).await;
    }

    /// Pauses the whole connection for `delay` from now; never shortens a
    /// pause already in force.
    pub(crate) fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        self.paused_until.send_if_modified(|paused| {
            let longer = paused.is_none_or(|current| current < until);
            if longer {
                *paused = Some(until);
            }
            longer
        });
    }

    /// Time left in the current pause, if any.
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        let paused = *self.paused_until.borrow();
        paused
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }
}

fn in_future(until: Option<Instant>) -> bool {
    until.is_some_and(|until| until > Instant::now())
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
