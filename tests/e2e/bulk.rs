//! Throughput with bulk reads and `$batch` writes at D365's default
//! budget: N changed orders at `maxRequestsPerSecond: 20`, timed from the
//! operator's start to every order Updated, with the D365 requests per
//! order by kind and the budget bound for the requests actually made.
//! Heavy: `BULK_ORDERS=1000 cargo test --test e2e bulk_reads -- --ignored
//! --nocapture` (default 1,000 orders); `SCALE_OPERATOR_BIN` runs another
//! build of the operator (e.g. target/release/sales-order-operator).

use std::time::{Duration, Instant};

use crate::support::env;
use d365_emulator::Faults;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};

const BUDGET: f64 = 20.0;

#[ignore = "heavy (1,000 orders ~1 min): BULK_ORDERS=N cargo test --test e2e bulk_reads -- --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_reads_and_batches_converge_near_the_budget_bound() {
    let n: usize = std::env::var("BULK_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let env = env("bulk", n, Faults::default()).await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = serde_json::json!({"spec": {
        "maxRequestsPerSecond": BUDGET as u32,
        "maxConcurrentRequests": 8,
        "batch": {"maxOperations": 500, "windowMilliseconds": 50}
    }});
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("budget and batching");
    let api = env.orders();
    let created = Instant::now();
    crate::support::create_orders_concurrently(&api, (1..=n).map(SalesOrderStatus::test), 32).await;
    println!(
        "{n} objects created in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let operator = crate::support::Operator::start_bin(
        &crate::support::operator_bin(),
        env.cp.kubeconfig(),
        &env.ns,
        &["--max-concurrent-reconciles", "1024"],
    );
    let updated = |metrics: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(r#"sales_order_operator_objects{reason="Updated","#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let limit = Duration::from_secs(60 + n as u64 / 10);
    let took = testkit::wait_for(limit, || async {
        let metrics = operator.metrics().await;
        let done = updated(&metrics) as usize;
        if std::env::var_os("BULK_PROGRESS").is_some() {
            let sum = |p: &str| -> f64 {
                metrics
                    .lines()
                    .filter(|l| l.starts_with(p))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            };
            let gets =
                sum(r#"sales_order_operator_d365_requests_total{method="GET",kind="entity""#);
            let posts =
                sum(r#"sales_order_operator_d365_requests_total{method="POST",kind="batch""#);
            let t = started.elapsed().as_secs_f64();
            println!("{t:.1}s updated {done} GET {gets} batch {posts}");
        }
        (done >= n).then(|| started.elapsed())
    })
    .await
    .unwrap_or_else(|_| panic!("not all {n} Updated within {limit:?}"));

    let gets = operator
        .metric_sum(r#"sales_order_operator_d365_requests_total{method="GET",kind="entity""#)
        .await;
    let batches = operator
        .metric_sum(r#"sales_order_operator_d365_requests_total{method="POST",kind="batch""#)
        .await;
    let patches = operator
        .metric_sum(r#"sales_order_operator_d365_requests_total{method="PATCH""#)
        .await;
    let bound = (gets + batches + patches) / BUDGET;
    println!(
        "{n} orders at {BUDGET} req/s, bulk reads + $batch: all Updated after {:.1} s; \
         GET {gets} ({:.3}/order), $batch {batches} ({:.3}/order), PATCH {patches}; \
         budget bound for these requests {bound:.1} s ({:.2}x); \
         without bulk or batch it would be {:.0} s",
        took.as_secs_f64(),
        gets / n as f64,
        batches / n as f64,
        took.as_secs_f64() / bound,
        2.0 * n as f64 / BUDGET,
    );
    assert_eq!(env.client_writes().len(), n, "one accepted write per order");
    assert_eq!(patches, 0.0, "every PATCH inside a $batch");
    assert!(
        gets + batches < n as f64 / 2.0,
        "{gets} GETs + {batches} batches for {n} orders"
    );
}
