//! The conflict schedule, simulated: many orders, each attempt (GET +
//! PATCH) conflicting with a fixed probability, each conflict followed by
//! the schedule's delay. Deterministic (seeded), and free of everything
//! but the schedule — attempts take no time, nothing else limits them — so
//! it gives the schedule's own share of the time to converge: what
//! `benches/conflict_backoff.rs` prints to choose the default
//! `--conflict-backoff-cap`, and the bound the end-to-end test holds the
//! operator to.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::BackoffPolicy;

/// D365 requests per attempt: one GET, one PATCH (conflicted or not).
pub const REQUESTS_PER_ATTEMPT: u32 = 2;

/// D365 requests once an attempt's PATCH is accepted: the GET that proves
/// the 204 (D365 answers no entity).
pub const PROVING_READS: u32 = 1;

/// Seeds [`conflict_bound`] takes the worst of.
const BOUND_SEEDS: u64 = 20;

/// How one simulated fleet converged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Converged {
    /// When 99 % of the orders were written.
    pub p99: Duration,
    /// When the last one was.
    pub all: Duration,
    /// D365 requests per order, conflicted attempts included.
    pub requests_per_order: f64,
}

/// `orders` orders start together; every attempt conflicts with
/// probability `conflict_rate` (below 1) and is retried after `policy`'s
/// delay, jitter drawn from the same seeded generator.
pub fn simulate(policy: &BackoffPolicy, orders: usize, conflict_rate: f64, seed: u64) -> Converged {
    let rate = conflict_rate.clamp(0.0, 0.999);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = Vec::with_capacity(orders);
    let mut attempts = 0u64;
    for _ in 0..orders {
        let (mut at, mut failures) = (Duration::ZERO, 0u32);
        attempts += 1;
        while rng.random_bool(rate) {
            failures += 1;
            at += policy.delay(failures, rng.random::<f64>());
            attempts += 1;
        }
        done.push(at);
    }
    done.sort_unstable();
    let nth = |q: f64| {
        let i = ((orders as f64 * q).ceil() as usize).clamp(1, orders.max(1)) - 1;
        done.get(i).copied().unwrap_or_default()
    };
    Converged {
        p99: nth(0.99),
        all: nth(1.0),
        requests_per_order: (attempts * u64::from(REQUESTS_PER_ATTEMPT)
            + orders as u64 * u64::from(PROVING_READS)) as f64
            / orders.max(1) as f64,
    }
}

/// The schedule's simulated bound for `orders` orders at `conflict_rate`
/// with conflicts capped at `cap`: the latest "all converged" over
/// several seeds, so one lucky draw does not make it tight.
pub fn conflict_bound(cap: Duration, orders: usize, conflict_rate: f64) -> Duration {
    let policy = BackoffPolicy::conflicts(cap);
    (0..BOUND_SEEDS)
        .map(|seed| simulate(&policy, orders, conflict_rate, seed).all)
        .max()
        .unwrap_or_default()
}

/// D365 requests an hour of one order that conflicts on every attempt (a
/// writer that never stops, or a permission problem answered as 409):
/// the price of a short cap.
pub fn requests_per_hour_always_conflicting(policy: &BackoffPolicy, seed: u64) -> f64 {
    let hour = Duration::from_secs(3600);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut at, mut failures, mut attempts) = (Duration::ZERO, 0u32, 0u32);
    while at < hour {
        attempts += 1;
        failures += 1;
        at += policy.delay(failures, rng.random::<f64>());
    }
    f64::from(attempts * REQUESTS_PER_ATTEMPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cap: u64) -> BackoffPolicy {
        BackoffPolicy::conflicts(Duration::from_secs(cap))
    }

    #[test]
    fn without_conflicts_everything_converges_at_once_in_one_attempt() {
        let c = simulate(&policy(8), 100, 0.0, 1);
        assert_eq!(
            (c.p99, c.all, c.requests_per_order),
            (Duration::ZERO, Duration::ZERO, 3.0)
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_figures_and_the_cap_shortens_the_tail() {
        let a = simulate(&policy(8), 1000, 0.4, 7);
        assert_eq!(a, simulate(&policy(8), 1000, 0.4, 7));
        // About 1 / (1 - 0.4) attempts of two requests each, plus the
        // proving read.
        assert!((4.1..4.6).contains(&a.requests_per_order), "{a:?}");
        let long = simulate(&policy(300), 1000, 0.4, 7);
        assert!(long.all > a.all * 2, "{long:?} vs {a:?}");
        assert!(a.p99 <= a.all);
    }

    #[test]
    fn the_bound_holds_every_seed_and_grows_with_the_cap() {
        let bound = conflict_bound(Duration::from_secs(8), 1000, 0.4);
        for seed in 0..BOUND_SEEDS {
            assert!(simulate(&policy(8), 1000, 0.4, seed).all <= bound);
        }
        assert!(conflict_bound(Duration::from_secs(2), 1000, 0.4) < bound);
    }

    #[test]
    fn an_order_that_always_conflicts_costs_about_two_requests_per_cap() {
        let per_hour = requests_per_hour_always_conflicting(&policy(60), 1);
        // 1 + 2 + 4 + 8 + 16 + 32 s, then about a minute each: ~60 attempts.
        assert!((110.0..=140.0).contains(&per_hour), "{per_hour}");
    }
}
