//! Chooses the default `--conflict-backoff-cap`: the conflict schedule
//! (1 s, 2 s, 4 s, … with jitter, up to a cap) simulated for 1,000 orders
//! at 40 % conflicts per attempt (`reconcile::simulate`, deterministic),
//! for several caps. Prints, per cap: when 99 % and 100 % of the orders
//! are written (the worst of 20 seeds, the bound the end-to-end test
//! uses), D365 requests per order, and what one order that conflicts on
//! every attempt costs an hour. `cargo bench --bench conflict_backoff`
//! (or `make bench`).

use std::time::Duration;

use sales_order_operator::reconcile::simulate::{
    Converged, conflict_bound, requests_per_hour_always_conflicting, simulate,
};
use sales_order_operator::reconcile::{BackoffPolicy, DEFAULT_CONFLICT_CAP};

const ORDERS: usize = 1_000;
const CONFLICT_RATE: f64 = 0.4;
const SEEDS: u64 = 20;

fn main() {
    println!(
        "conflict schedule, {ORDERS} orders, {:.0} % conflicts per attempt, {SEEDS} seeds (worst / mean)",
        CONFLICT_RATE * 100.0
    );
    println!(
        "{:>8} | {:>16} | {:>16} | {:>10} | {:>22}",
        "cap", "99 % written (s)", "100 % written (s)", "req/order", "req/h, always conflicts"
    );
    let caps = [2, 4, 8, 16, 32, 60, 300].map(Duration::from_secs);
    for cap in caps {
        let policy = BackoffPolicy::conflicts(cap);
        let runs: Vec<_> = (0..SEEDS)
            .map(|seed| simulate(&policy, ORDERS, CONFLICT_RATE, seed))
            .collect();
        let worst = |f: fn(&Converged) -> f64| runs.iter().map(f).fold(0.0, f64::max);
        let mean = |f: fn(&Converged) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
        let p99: fn(&Converged) -> f64 = |c| c.p99.as_secs_f64();
        let all: fn(&Converged) -> f64 = |c| c.all.as_secs_f64();
        let requests: fn(&Converged) -> f64 = |c| c.requests_per_order;
        let bound = conflict_bound(cap, ORDERS, CONFLICT_RATE).as_secs_f64();
        assert!(
            (bound - worst(all)).abs() < 1e-9,
            "the bound is the worst seed"
        );
        let marker = if cap == DEFAULT_CONFLICT_CAP {
            "  <- default"
        } else {
            ""
        };
        println!(
            "{:>7}s | {:>7.1} / {:>6.1} | {:>7.1} / {:>6.1} | {:>10.2} | {:>22.0}{marker}",
            cap.as_secs(),
            worst(p99),
            mean(p99),
            bound,
            mean(all),
            mean(requests),
            requests_per_hour_always_conflicting(&policy, 1),
        );
    }
}
