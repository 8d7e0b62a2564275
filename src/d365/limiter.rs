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

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit, watch};
use tokio::time::Instant;

pub(crate) struct Limiter {
    rate: DefaultDirectRateLimiter,
    slots: Semaphore,
    /// End of the current (or last) pause; a watch channel so waiters
    /// learn at once that a pause began.
    paused_until: watch::Sender<Option<Instant>>,
}

/// Held for the duration of one HTTP exchange.
pub(crate) struct Permit<'a> {
    _slot: SemaphorePermit<'a>,
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
        }
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
                return Ok(Permit { _slot: slot });
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
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn limiter(rps: u32, concurrent: u32) -> Limiter {
        Limiter::new(
            NonZeroU32::new(rps).unwrap(),
            NonZeroU32::new(concurrent).unwrap(),
        )
    }

    // Paused tokio time: nothing here may wait, and if something did, the
    // clock would show it.
    #[tokio::test(start_paused = true)]
    async fn a_paused_connection_fails_fast_with_the_time_left() {
        let l = limiter(100, 4);
        assert_eq!(l.paused_for(), None);
        drop(l.acquire().await.expect("not paused"));
        l.pause(Duration::from_millis(300));
        let start = Instant::now();
        let refused = l.acquire().await.err().expect("paused: refused");
        assert_eq!(refused.left, Duration::from_millis(300));
        assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
        tokio::time::advance(Duration::from_millis(299)).await;
        assert_eq!(
            l.acquire().await.err().map(|p| p.left),
            Some(Duration::from_millis(1))
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.paused_for(), None);
        drop(l.acquire().await.expect("the pause is over"));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_never_shortens() {
        let l = limiter(10, 1);
        l.pause(Duration::from_secs(10));
        l.pause(Duration::from_secs(1));
        assert_eq!(l.paused_for(), Some(Duration::from_secs(10)));
        l.pause(Duration::from_secs(20));
        assert_eq!(l.paused_for(), Some(Duration::from_secs(20)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_begins_while_waiting_for_a_slot_fails_the_waiter_at_once() {
        let l = Arc::new(limiter(100, 1));
        let held = l.acquire().await.expect("free");
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.acquire().await.err() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits for the one slot");
        let start = Instant::now();
        l.pause(Duration::from_secs(120));
        let refused = waiter.await.unwrap().expect("the pause fails the waiter");
        assert_eq!(refused.left, Duration::from_secs(120));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no part of the pause waited out"
        );
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn until_paused_resolves_when_a_pause_begins() {
        let l = Arc::new(limiter(100, 1));
        let watcher = {
            let l = l.clone();
            tokio::spawn(async move { l.until_paused().await })
        };
        tokio::task::yield_now().await;
        assert!(!watcher.is_finished(), "no pause yet");
        l.pause(Duration::from_secs(5));
        watcher.await.unwrap();
        l.until_paused().await; // paused now: at once
    }

    #[tokio::test]
    async fn concurrency_is_capped() {
        let l = Arc::new(limiter(1000, 2));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (l, in_flight, peak) = (l.clone(), in_flight.clone(), peak.clone());
                tokio::spawn(async move {
                    let _p = l.acquire().await.expect("never paused");
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn rate_is_limited() {
        // 10/s with a burst of 2: 6 requests need at least (6-2)/10 s.
        let l = limiter(10, 2);
        let start = Instant::now();
        for _ in 0..6 {
            drop(l.acquire().await.expect("never paused"));
        }
        assert!(
            start.elapsed() >= Duration::from_millis(380),
            "{:?}",
            start.elapsed()
        );
    }
}
