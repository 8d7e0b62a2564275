//! Per-connection admission, so one connection's trouble never holds the
//! controller's reconcile slots.
//!
//! A reconcile holds one of `--max-concurrent-reconciles` slots while it
//! runs. Had it waited inside the D365 limiter for a paused or saturated
//! connection, a few such waits would take every slot, and the orders of
//! healthy connections would queue behind them. So before any request the
//! reconcile asks its connection:
//! - paused after a 429: nothing is sent; the order reports Throttled and
//!   is requeued for the end of the pause;
//! - [`limit`] reconciles of this connection already in D365: nothing is
//!   sent and no status written; the order is requeued for about its turn
//!   (orders waiting / throughput, jittered) — no backoff, no failure;
//! - else admitted: the [`Ticket`] is held for the D365 part of the attempt.
//!
//! With at most `limit` reconciles in D365, what is left to wait inside the
//! limiter is the rate, at most about `limit / rate` seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::sync::{Resolved, SyncResult};
use crate::api::Reason;
use crate::d365::ConnectionSettings;
use crate::locks::lock;
use crate::maps::shrink_when_sparse;
use crate::metrics::{Metrics, RequeueCause};
use crate::reconcile::Outcome;

/// Shortest and longest wait before a turned-away order comes back: short
/// enough to take a slot soon after it frees, long enough not to spin;
/// the cap keeps a long queue from parking orders for long.
const MIN_TURN: Duration = Duration::from_millis(100);
const MAX_TURN: Duration = Duration::from_secs(30);

/// With `$batch` on, reads go in bulk and writes in batches: one request
/// carries many orders (a bulk read up to about 45, a batch up to its
/// operations). Below the mean measured with 10,000 orders at 20
/// requests/s (27 orders a bulk GET, 36 a batch, each order read twice),
/// so a second's rate of requests serves at least this many times as many
/// orders.
pub const ORDERS_PER_BULK_REQUEST: usize = 20;

/// How many reconciles of one connection may be in D365 at once: its
/// concurrency limit, but no more than one second's worth of its rate (so
/// the rate wait stays under a second); with `$batch`, plus as many again
/// as a batch holds, up to a second's worth of bulk requests
/// ([`ORDERS_PER_BULK_REQUEST`] each), since orders waiting for their bulk
/// read or batch send nothing themselves, and only a full queue fills them.
pub fn limit(max_per_second: u32, max_concurrent: u32, batch_operations: Option<usize>) -> usize {
    let per_second = max_per_second.max(1) as usize;
    let singles = (max_concurrent.max(1) as usize).min(per_second);
    singles + batch_operations.map_or(0, |ops| ops.min(per_second * ORDERS_PER_BULK_REQUEST))
}

/// Admissions per second the connection can sustain: `limit` tickets each
/// held `mean_hold`, never more than the rate allows (one request each at
/// least). An unknown hold (no ticket returned yet) assumes the rate.
pub fn throughput(limit: usize, mean_hold: Option<Duration>, max_per_second: u32) -> f64 {
    let rate = f64::from(max_per_second.max(1));
    match mean_hold.filter(|h| !h.is_zero()) {
        Some(hold) => (limit as f64 / hold.as_secs_f64()).min(rate),
        None => rate,
    }
}

/// When a turned-away order should come back: after the `ahead` orders
/// already waiting had their turn at `per_second`, spread by `jitter` in
/// [0, 1) over half to one and a half of that, within [MIN_TURN, MAX_TURN].
pub fn turn_delay(ahead: usize, per_second: f64, jitter: f64) -> Duration {
    let turn = (ahead as f64 + 1.0) / per_second.max(f64::MIN_POSITIVE);
    let base = turn.clamp(MIN_TURN.as_secs_f64(), MAX_TURN.as_secs_f64());
    Duration::from_secs_f64(base * (0.5 + jitter.clamp(0.0, 1.0)))
}

/// The admission state of one connection; shared by all its orders.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    max_per_second: u32,
    slots: Arc<Semaphore>,
    /// Mean time a ticket is held (microseconds, moving average; 0 =
    /// unknown): what the throughput estimate is made of.
    hold_micros: Arc<AtomicU64>,
    /// Orders turned away and expected back: the queue.
    waiting: Mutex<Waiting>,
}

/// Orders turned away, with when each expectation lapses (an order deleted
/// meanwhile never comes back). Lapsed ones are dropped at most once per
/// [`PRUNE_EVERY`], not on every turn-away: with 100,000 orders waiting, a
/// scan per turn-away made each reconcile cost O(orders).
#[derive(Debug)]
struct Waiting {
    orders: HashMap<String, Instant>,
    next_prune: Instant,
}

/// How often lapsed expectations leave the queue; until then they count as
/// waiting, which only lengthens a turn a little.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

impl Waiting {
    fn new() -> Self {
        Self {
            orders: HashMap::new(),
            next_prune: Instant::now() + PRUNE_EVERY,
        }
    }

    fn prune(&mut self, now: Instant) {
        if now >= self.next_prune {
            self.orders.retain(|_, lapses| *lapses > now);
            shrink_when_sparse(&mut self.orders);
            self.next_prune = now + PRUNE_EVERY;
        }
    }
}

/// The answer to one reconcile asking for its connection.
#[derive(Debug)]
pub enum Entry {
    Admitted(Ticket),
    /// Paused after a 429 for this much longer.
    Paused(Duration),
    /// Full: come back after this long.
    Busy(Duration),
}

/// Held while one reconcile talks to D365; returns its place on drop.
#[derive(Debug)]
pub struct Ticket {
    _slot: OwnedSemaphorePermit,
    started: Instant,
    hold_micros: Arc<AtomicU64>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let sample = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .hold_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mean| {
                Some(if mean == 0 {
                    sample.max(1)
                } else {
                    (mean / 8)
                        .saturating_mul(7)
                        .saturating_add(sample / 8)
                        .max(1)
                })
            });
    }
}

impl Admission {
    /// The admission of a connection with these limits (see [`limit`]).
    pub fn for_settings(settings: &ConnectionSettings) -> Self {
        let limit = limit(
            settings.max_requests_per_second,
            settings.max_concurrent_requests,
            settings.batch.map(|b| b.max_operations),
        );
        // Bulk requests serve more orders a second than there are requests.
        let per_second = match settings.batch {
            Some(_) => settings
                .max_requests_per_second
                .saturating_mul(ORDERS_PER_BULK_REQUEST as u32),
            None => settings.max_requests_per_second,
        };
        Self::new(limit, per_second)
    }

    /// At most `limit` tickets out at once, for a connection paced at
    /// `max_per_second`.
    pub fn new(limit: usize, max_per_second: u32) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            max_per_second,
            slots: Arc::new(Semaphore::new(limit)),
            hold_micros: Arc::new(AtomicU64::new(0)),
            waiting: Mutex::new(Waiting::new()),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Admits `order` (any stable name) unless the connection is paused
    /// (`paused_for`, from the client) or full. Never waits. `jitter` in
    /// [0, 1) spreads the orders turned away together.
    pub fn enter(&self, order: &str, paused_for: Option<Duration>, jitter: f64) -> Entry {
        if let Some(left) = paused_for {
            lock(&self.waiting).orders.remove(order);
            return Entry::Paused(left);
        }
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            lock(&self.waiting).orders.remove(order);
            return Entry::Admitted(Ticket {
                _slot: slot,
                started: Instant::now(),
                hold_micros: self.hold_micros.clone(),
            });
        }
        let now = Instant::now();
        let mut waiting = lock(&self.waiting);
        waiting.prune(now);
        // Not waiting behind itself; its key is reused.
        let key = match waiting.orders.remove_entry(order) {
            Some((key, _)) => key,
            None => order.to_owned(),
        };
        let delay = turn_delay(waiting.orders.len(), self.throughput(), jitter);
        // Expected back after `delay`; forgotten if not back well after.
        waiting
            .orders
            .insert(key, now + delay * 2 + Duration::from_secs(1));
        Entry::Busy(delay)
    }

    fn throughput(&self) -> f64 {
        let micros = self.hold_micros.load(Ordering::Relaxed);
        let hold = (micros > 0).then(|| Duration::from_micros(micros));
        throughput(self.limit, hold, self.max_per_second)
    }
}

/// Why an attempt ended before D365 was asked.
#[derive(Debug)]
pub enum Turned {
    /// The attempt's result all the same (connection not ready, paused);
    /// boxed, as it is the rare path.
    Report(Box<SyncResult>),
    /// The connection is full: requeue after this long, report nothing.
    Busy(Duration),
}

/// Asks `resolved`'s admission for `order`; `connection` names it in the
/// Throttled message. Requeues for a paused or busy connection are counted.
pub fn admit(
    resolved: Resolved,
    order: &str,
    connection: &str,
    metrics: &Metrics,
) -> Result<(Resolved, Ticket), Turned> {
    let paused_for = resolved.client.paused_for();
    match resolved.admission.enter(order, paused_for, rand::random()) {
        Entry::Admitted(ticket) => Ok((resolved, ticket)),
        Entry::Paused(left) => {
            metrics.connection_requeue(RequeueCause::Paused);
            Err(Turned::Report(Box::new(paused(connection, left))))
        }
        Entry::Busy(delay) => {
            metrics.connection_requeue(RequeueCause::Busy);
            Err(Turned::Busy(delay))
        }
    }
}

/// Throttled, to come back when the pause ends.
fn paused(connection: &str, left: Duration) -> SyncResult {
    SyncResult {
        outcome: Outcome::Failed {
            reason: Reason::Throttled,
            message: format!(
                "D365Connection {connection} is paused for another {}s after a 429 (service protection); nothing sent",
                left.as_secs_f64().ceil()
            ),
            observed: None,
        },
        retry_after: Some(left),
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
