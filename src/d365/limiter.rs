//! Client-side pacing shared by every order of one connection.
//!
//! D365's service protection is per environment, so the pacing is too: the
//! controller shares one client (and so one limiter) per connection. Three
//! gates, in order: a connection-wide pause set by a 429, a concurrency cap
//! (tokio semaphore), and a GCRA rate limit (governor).

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::locks::lock;

pub(crate) struct Limiter {
    rate: DefaultDirectRateLimiter,
    slots: Semaphore,
    paused_until: Mutex<Option<Instant>>,
}

/// Held for the duration of one HTTP exchange.
pub(crate) struct Permit<'a> {
    _slot: SemaphorePermit<'a>,
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
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request may be sent: the pause is over, a slot is free
    /// and the rate allows it. A pause that starts while waiting is honoured
    /// too, so nothing leaves during a 429 pause.
    pub(crate) async fn acquire(&self) -> Permit<'_> {
        loop {
            self.wait_out_pause().await;
            let slot = self
                .slots
                .acquire()
                .await
                .expect("limiter semaphore is never closed");
            self.rate.until_ready().await;
            if self.paused_for().is_none() {
                return Permit { _slot: slot };
            }
        }
    }

    /// Pauses the whole connection for `delay` from now; never shortens a
    /// pause already in force.
    pub(crate) fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = lock(&self.paused_until);
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    /// Time left in the current pause, if any.
    pub(crate) fn paused_for(&self) -> Option<Duration> {
        let paused = *lock(&self.paused_until);
        paused
            .map(|until| until.saturating_duration_since(Instant::now()))
            .filter(|left| !left.is_zero())
    }

    async fn wait_out_pause(&self) {
        while let Some(left) = self.paused_for() {
            tokio::time::sleep(left).await;
        }
    }
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

    #[tokio::test]
    async fn pause_delays_the_next_acquire() {
        let l = limiter(100, 4);
        assert_eq!(l.paused_for(), None);
        drop(l.acquire().await);
        l.pause(Duration::from_millis(300));
        let left = l.paused_for().unwrap();
        assert!(left > Duration::from_millis(250) && left <= Duration::from_millis(300));
        let start = Instant::now();
        drop(l.acquire().await);
        assert!(
            start.elapsed() >= Duration::from_millis(290),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(l.paused_for(), None);
    }

    #[tokio::test]
    async fn pause_never_shortens() {
        let l = limiter(10, 1);
        l.pause(Duration::from_secs(10));
        l.pause(Duration::from_secs(1));
        assert!(l.paused_for().unwrap() > Duration::from_secs(9));
    }

    #[tokio::test]
    async fn pause_set_while_waiting_for_a_slot_is_honoured() {
        let l = Arc::new(limiter(100, 1));
        let held = l.acquire().await;
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move {
                let _p = l.acquire().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let paused_at = Instant::now();
        l.pause(Duration::from_millis(300));
        drop(held);
        let got_through = waiter.await.unwrap();
        assert!(got_through.duration_since(paused_at) >= Duration::from_millis(290));
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
                    let _p = l.acquire().await;
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
            drop(l.acquire().await);
        }
        assert!(
            start.elapsed() >= Duration::from_millis(380),
            "{:?}",
            start.elapsed()
        );
    }
}
