//! Service protection [doc]: over `maxRps` requests in a second or over
//! `maxConcurrent` in flight → 429 with `Retry-After` in seconds. A client
//! that keeps sending while told to wait gets a longer wait ("pushing
//! harder makes the wait longer" [doc]); the exact curve is [unverified]:
//! 2 s, doubling per escalation (at most one per 500 ms of pushing), capped
//! at 120 s, decaying one step per calm second.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::CapacityModel;

/// Message D365 answers with under resource-based throttling [doc].
pub const THROTTLE_MESSAGE: &str = "This request could not be processed at this time due to system experiencing high resource utilization.";

const BASE_SECS: u64 = 2;
const MAX_SECS: u64 = 120;
const ESCALATE_EVERY: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Throttle {
    state: Mutex<Window>,
    in_flight: AtomicU32,
    /// `/data` requests in flight, counted only under a [`CapacityModel`].
    load: AtomicU32,
}

#[derive(Default)]
struct Window {
    start: Option<Instant>,
    count: u32,
    throttled_in_window: bool,
    blocked_until: Option<Instant>,
    level: u32,
    last_escalation: Option<Instant>,
}

/// Held while a request is in flight; releases its concurrency slot on drop.
pub struct Slot<'a>(Option<&'a AtomicU32>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Throttle {
    /// Admits a request or returns the `Retry-After` seconds.
    pub fn admit(
        &self,
        max_rps: Option<u32>,
        max_concurrent: Option<u32>,
    ) -> Result<Slot<'_>, u64> {
        if max_rps.is_none() && max_concurrent.is_none() {
            return Ok(Slot(None));
        }
        let now = Instant::now();
        let mut w = self.state.lock();
        if let Some(until) = w.blocked_until {
            if now < until {
                // Pushing while told to wait.
                if w.last_escalation.is_none_or(|t| now - t >= ESCALATE_EVERY) {
                    w.escalate(now);
                }
                return Err(w.retry_after(now));
            }
            w.blocked_until = None;
        }
        if w.start.is_none_or(|s| now - s >= Duration::from_secs(1)) {
            if !w.throttled_in_window {
                w.level = w.level.saturating_sub(1);
            }
            w.start = Some(now);
            w.count = 0;
            w.throttled_in_window = false;
        }
        let over_rps = max_rps.is_some_and(|m| w.count >= m);
        let over_conc = max_concurrent.is_some_and(|m| self.in_flight.load(Ordering::Relaxed) >= m);
        if over_rps || over_conc {
            w.escalate(now);
            return Err(w.retry_after(now));
        }
        w.count += 1;
        drop(w);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Slot(Some(&self.in_flight)))
    }

    /// Under the capacity model: the request's latency and the slot that
    /// counts it in flight, or the `Retry-After` seconds of a 429 when
    /// too many are in flight already.
    pub fn load(&self, model: &CapacityModel) -> Result<(Slot<'_>, Duration), u64> {
        let n = self.load.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Slot(Some(&self.load));
        if n > model.throttle_in_flight.max(model.concurrent) {
            return Err(model.retry_after_secs.max(1));
        }
        Ok((slot, model_latency(model, n)))
    }

    /// `/data` requests in flight under the capacity model now.
    pub fn load_in_flight(&self) -> u32 {
        self.load.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        *self.state.lock() = Window::default();
    }
}

/// `base × max(1, in_flight / concurrent)`: parallel workers, then a queue.
fn model_latency(model: &CapacityModel, in_flight: u32) -> Duration {
    let base = Duration::from_millis(model.base_latency_ms);
    let load = f64::from(in_flight) / f64::from(model.concurrent.max(1));
    base.mul_f64(load.max(1.0))
}

impl Window {
    fn escalate(&mut self, now: Instant) {
        self.level += 1;
        self.throttled_in_window = true;
        self.last_escalation = Some(now);
        let secs = (BASE_SECS << (self.level - 1).min(10)).min(MAX_SECS);
        self.blocked_until = Some(now + Duration::from_secs(secs));
    }

    fn retry_after(&self, now: Instant) -> u64 {
        let left = self.blocked_until.map_or(Duration::ZERO, |u| u - now);
        left.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_pushed() {
        let t = Throttle::default();
        assert!(t.admit(Some(1), None).is_ok());
        let first = t.admit(Some(1), None).err().unwrap();
        assert_eq!(first, 2);
        std::thread::sleep(Duration::from_millis(550));
        let second = t.admit(Some(1), None).err().unwrap();
        assert!(second > first, "{second} > {first}");
    }

    #[test]
    fn capacity_model_slows_past_capacity_and_refuses_past_the_threshold() {
        let model = CapacityModel {
            concurrent: 2,
            base_latency_ms: 10,
            throttle_in_flight: 4,
            retry_after_secs: 3,
        };
        let t = Throttle::default();
        let held: Vec<_> = (0..4)
            .map(|_| t.load(&model).expect("within the threshold"))
            .collect();
        let ms: Vec<_> = held.iter().map(|(_, d)| d.as_millis()).collect();
        assert_eq!(ms, [10, 10, 15, 20]);
        assert_eq!(t.load(&model).err(), Some(3), "the fifth is refused");
        assert_eq!(
            t.load.load(Ordering::Relaxed),
            4,
            "a refusal leaves no trace"
        );
        drop(held);
        assert_eq!(t.load.load(Ordering::Relaxed), 0, "finished requests leave");
        assert_eq!(t.load(&model).ok().map(|(_, d)| d.as_millis()), Some(10));
    }
}
