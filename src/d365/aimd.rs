//! Adaptive concurrency limit: additive increase, multiplicative decrease
//! (AIMD, as TCP's congestion window).
//!
//! D365 does not publish its capacity: resource-based throttling answers
//! 429 once the environment is busy [doc], and before that its answers
//! slow down. So the limit grows by one per round trip while answers come
//! back near the fastest latency seen lately (the floor) and no 429
//! arrives, and shrinks at once on a 429 or when latency climbs well above
//! the floor: the environment is queueing, and more in flight would only
//! wait longer, then be refused. Pure state, fed by the limiter.

use std::num::NonZeroU32;
use std::time::Duration;

use tokio::time::Instant;

/// Latency this many times the floor means queueing: back off.
pub(crate) const TOLERANCE: f64 = 1.5;
/// Factor on a latency back-off: mild, the environment still answers.
const LATENCY_BACKOFF: f64 = 0.75;
/// Factor on a 429: the environment refused work, halve.
const THROTTLE_BACKOFF: f64 = 0.5;
/// One halving per this long: `Retry-After` is whole seconds [doc], and
/// the connection is paused that long anyway.
const THROTTLE_CALM: Duration = Duration::from_secs(1);
/// Limit to start from (or the ceiling, if lower): today's fixed default.
const START: u32 = 8;
/// The floor is the fastest answer of the current and the previous window,
/// so it follows the environment when it gets slower for good.
const FLOOR_WINDOW: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Aimd {
    limit: f64,
    ceiling: f64,
    floor: Floor,
    /// No latency back-off before this: the answers of requests sent
    /// before the last one are late for the same reason.
    calm_until: Option<Instant>,
    /// No second halving before this, for the 429s of the same burst.
    throttle_calm_until: Option<Instant>,
}

/// Decaying minimum of the answer latency.
#[derive(Debug, Default)]
struct Floor {
    window_start: Option<Instant>,
    current: Option<Duration>,
    previous: Option<Duration>,
}

impl Floor {
    fn observe(&mut self, now: Instant, latency: Duration) -> Duration {
        let start = *self.window_start.get_or_insert(now);
        if now.duration_since(start) >= FLOOR_WINDOW {
            self.previous = self.current.take();
            self.window_start = Some(now);
        }
        let current = self.current.map_or(latency, |c| c.min(latency));
        self.current = Some(current);
        self.previous.map_or(current, |p| p.min(current))
    }
}

impl Aimd {
    pub(crate) fn new(ceiling: NonZeroU32) -> Self {
        Self {
            limit: f64::from(START.min(ceiling.get())),
            ceiling: f64::from(ceiling.get()),
            floor: Floor::default(),
            calm_until: None,
            throttle_calm_until: None,
        }
    }

    /// Requests allowed in flight now, in `1..=ceiling`.
    pub(crate) fn limit(&self) -> u32 {
        // In range by construction: clamped wherever it changes.
        self.limit.floor() as u32
    }

    /// A request was answered (not 429) after `latency`, with `in_flight`
    /// requests out (itself included) when it finished.
    pub(crate) fn on_answer(&mut self, now: Instant, latency: Duration, in_flight: u32) {
        let floor = self.floor.observe(now, latency);
        if latency.as_secs_f64() > floor.as_secs_f64() * TOLERANCE {
            if self.calm_until.is_none_or(|until| now >= until) {
                self.scale(LATENCY_BACKOFF);
                self.calm_until = Some(now + latency);
            }
        } else if f64::from(in_flight) * 2.0 >= self.limit {
            // Grow only a limit in use: an idle connection proves nothing.
            self.limit = (self.limit + 1.0 / self.limit).min(self.ceiling);
        }
    }

    /// A request was answered 429.
    pub(crate) fn on_throttle(&mut self, now: Instant) {
        if self.throttle_calm_until.is_none_or(|until| now >= until) {
            self.scale(THROTTLE_BACKOFF);
            self.throttle_calm_until = Some(now + THROTTLE_CALM);
            self.calm_until = self.throttle_calm_until;
        }
    }

    fn scale(&mut self, factor: f64) {
        self.limit = (self.limit * factor).max(1.0);
    }
}

#[cfg(test)]
#[path = "aimd_tests.rs"]
mod tests;
