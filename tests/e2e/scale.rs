//! Scale: the operator's memory and CPU per reconcile with 1,000 and
//! 10,000 in-sync orders, side by side in one run (issue 12, items 3 and
//! 4). Figures come from the operator process itself: `/proc/<pid>/status`
//! (VmRSS, VmHWM), `/proc/<pid>/stat` (user + system CPU) and its own
//! reconcile counter on /metrics. Heavy (~10 min on 2 cores):
//! `cargo test --test e2e scale -- --ignored --nocapture`; `SCALE_SIZES`
//! (e.g. `1000,10000`, or `100000`: memory and the first round only, about
//! 10 minutes more) picks the fleets, `SCALE_OPERATOR_BIN` another
//! build of the operator (one saved before a change, to compare).

use std::time::{Duration, Instant};

use d365_emulator::Faults;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use sales_order_operator::api::{SalesOrderStatus, SalesStatus};

use crate::procfs::{cpu_time, rss_at_rest, status_kib};
use crate::support::{Operator, env};

/// One fleet's figures.
#[derive(Debug)]
struct Figures {
    orders: usize,
    rss_kib: u64,
    /// Of RSS: the heap and stacks (RssAnon) and the binary's pages
    /// (RssFile), so a change tells which it moved.
    anon_kib: u64,
    file_kib: u64,
    hwm_kib: u64,
    /// First round: list, first reconcile and status write of each order.
    first_ms_per_reconcile: f64,
    /// A resync round: every order read again, nothing written (only up
    /// to [`RESYNC_UP_TO`] orders).
    resync_ms_per_reconcile: Option<f64>,
    first_round: Duration,
}

async fn reconciles(op: &Operator) -> f64 {
    op.metric_sum("controller_runtime_reconcile_total{").await
}

async fn in_sync(op: &Operator) -> f64 {
    op.metric_sum(r#"sales_order_operator_objects{reason="InSync","#)
        .await
}

/// Fleets up to this size also measure a resync round (every 60 s). A
/// larger one cannot be re-read every minute within the connection's 500
/// requests/s, and resyncs of orders already read would starve the first
/// reads of the rest: it gets no resync, and only memory and the first
/// round are measured.
const RESYNC_UP_TO: usize = 10_000;

/// Creates `n` orders wanting what the emulator already holds (Backorder,
/// no delivery date), 32 at a time, then runs the operator over them.
async fn measure(n: usize) -> Figures {
    let env = env(&format!("scale-{n}"), n, Faults::default()).await;
    let api = env.orders();
    let created = Instant::now();
    let orders = (1..=n).map(|i| {
        SalesOrderStatus::test(i)
            .wanting(SalesStatus::Backorder)
            .delivering(None)
    });
    crate::support::create_orders_concurrently(&api, orders, 32).await;
    println!(
        "{n} orders created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    let with_resync = n <= RESYNC_UP_TO;
    let resync = Duration::from_secs(if with_resync { 60 } else { 24 * 3600 });
    let op = Operator::start_bin(
        &crate::support::operator_bin(),
        env.cp.kubeconfig(),
        &env.ns,
        &[
            "--resync-interval",
            &format!("{}s", resync.as_secs()),
            "--max-concurrent-reconciles",
            "64",
        ],
    );
    let pid = op.pid();
    let started = Instant::now();
    let limit = Duration::from_secs(120) + Duration::from_millis(30 * n as u64);
    testkit::wait_for(limit, || async {
        (in_sync(&op).await as usize >= n).then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("not all {n} InSync within {limit:?}:\n{}", op.logs()));
    let first_round = started.elapsed();
    let (cpu1, rec1) = (cpu_time(pid).expect("operator runs"), reconciles(&op).await);
    let resync_ms_per_reconcile = if with_resync {
        // Every order comes back one resync interval after its first reconcile.
        let round = limit + resync;
        testkit::wait_for(round, || async {
            (reconciles(&op).await >= rec1 + n as f64).then_some(())
        })
        .await
        .unwrap_or_else(|_| panic!("no resync round of {n} within {round:?}"));
        let (cpu2, rec2) = (cpu_time(pid).expect("operator runs"), reconciles(&op).await);
        Some((cpu2 - cpu1).as_secs_f64() * 1e3 / (rec2 - rec1))
    } else {
        None
    };
    rss_at_rest(pid).await.expect("operator runs");
    let figures = Figures {
        orders: n,
        rss_kib: status_kib(pid, "VmRSS:").expect("operator runs"),
        anon_kib: status_kib(pid, "RssAnon:").expect("operator runs"),
        file_kib: status_kib(pid, "RssFile:").expect("operator runs"),
        hwm_kib: status_kib(pid, "VmHWM:").expect("operator runs"),
        first_ms_per_reconcile: cpu1.as_secs_f64() * 1e3 / rec1,
        resync_ms_per_reconcile,
        first_round,
    };
    println!("{figures:?}");
    // The next fleet's apiserver need not hold this one.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let _ = namespaces.delete(&env.ns, &Default::default()).await;
    figures
}

/// Prints, per fleet, RSS and peak RSS after a resync round and operator
/// CPU per reconcile (first round and resync round), and checks the
/// figures are real: every order reconciled, CPU counted.
#[ignore = "heavy (~10 min): cargo test --test e2e scale -- --ignored --nocapture"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_memory_and_cpu_per_reconcile_at_one_and_ten_thousand_orders() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SCALE_SIZES: numbers"))
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        rows.push(measure(n).await);
    }
    println!(
        "orders  VmRSS MiB (anon + file)  VmHWM MiB  CPU ms/reconcile (first, resync)  first round s"
    );
    for f in &rows {
        println!(
            "{:>6}  {:>9.1} ({:>5.1} + {:>4.1})  {:>9.1}  {:>8.3} {:>8}  {:>6.1}",
            f.orders,
            f.rss_kib as f64 / 1024.0,
            f.anon_kib as f64 / 1024.0,
            f.file_kib as f64 / 1024.0,
            f.hwm_kib as f64 / 1024.0,
            f.first_ms_per_reconcile,
            f.resync_ms_per_reconcile
                .map_or_else(|| "-".into(), |ms| format!("{ms:.3}")),
            f.first_round.as_secs_f64()
        );
        assert!(f.first_ms_per_reconcile > 0.0);
        assert!(f.resync_ms_per_reconcile.is_none_or(|ms| ms > 0.0));
    }
}
