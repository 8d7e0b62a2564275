//! End to end on a real kube-apiserver + etcd: the operator binary, the CRDs
//! from crds/, and the D365 emulator. Many orders converge, with and without
//! injected conflicts, and the write history proves the locking protocol.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::support::{Env, env, wait_all};
use d365_emulator::{Faults, WriteSource};
use kube::ResourceExt;
use kube::api::ListParams;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures::order_number;
use sales_order_operator::reconcile::simulate::conflict_bound;

const ORDERS: usize = 200;

/// Every accepted write carried the ETag current at that moment, and every
/// concurrent writer's edit is still in the final entity.
fn assert_history_is_safe(env: &Env) {
    let history = env.emu.history();
    for w in history
        .iter()
        .filter(|w| w.accepted && w.source == WriteSource::Client)
    {
        assert_eq!(
            w.if_match.as_deref(),
            Some(w.etag_before.as_str()),
            "write accepted on a stale ETag: {w:?}"
        );
    }
    let mut last_concurrent: HashMap<(String, String), BTreeMap<String, serde_json::Value>> =
        HashMap::new();
    for w in history
        .iter()
        .filter(|w| w.accepted && w.source == WriteSource::ConcurrentWriter)
    {
        let entry = last_concurrent
            .entry((w.data_area_id.clone(), w.sales_order_number.clone()))
            .or_default();
        entry.extend(w.fields.clone());
    }
    for ((company, number), fields) in &last_concurrent {
        let entity = env.emu.order(company, number).unwrap();
        for (field, value) in fields {
            assert_eq!(
                &entity[field], value,
                "concurrent edit of {field} on {number} was lost"
            );
        }
    }
}

/// Creates the orders, all wanted Delivered, and waits until all are Ready.
async fn create_and_converge(env: &Env, timeout: Duration) {
    let orders = (1..=ORDERS).map(SalesOrderStatus::test);
    crate::support::create_orders(&env.client, &env.ns, orders).await;
    wait_all(
        &env.client,
        &env.ns,
        ORDERS,
        &["Updated", "InSync"],
        timeout,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_converge_with_one_write_each() {
    let env = env("converge", ORDERS, Faults::default()).await;
    let operator = env.operator(&[]);
    create_and_converge(&env, Duration::from_secs(120)).await;

    let writes = env.client_writes();
    assert_eq!(writes.len(), ORDERS, "exactly one accepted PATCH per order");
    for n in 1..=ORDERS {
        let e = env.emu.order("usmf", &order_number(n)).unwrap();
        assert_eq!(e["SalesOrderStatus"], "Delivered");
        assert_eq!(e["ConfirmedReceiptDate"], "2025-02-08T12:00:00Z");
    }
    assert_history_is_safe(&env);
    let metrics = operator.metrics().await;
    assert!(
        // 200: each PATCH asks for the entity back and the emulator honours it.
        metrics.contains(r#"sales_order_operator_d365_requests_total{method="PATCH",kind="entity",code="200"} 200"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_at_forty_percent_still_converge_and_show_in_status_and_metrics() {
    let faults = Faults {
        conflict_rate: 0.4,
        ..Faults::default()
    };
    let env = env("conflicts", ORDERS, faults).await;
    let operator = env.operator(&["--conflict-backoff-cap", "4s"]);
    create_and_converge(&env, Duration::from_secs(240)).await;

    let refused = env
        .emu
        .history()
        .iter()
        .filter(|w| !w.accepted && w.source == WriteSource::Client)
        .count();
    assert!(
        refused > 20,
        "a 40% conflict rate must refuse many writes, saw {refused}"
    );
    let list = env.orders().list(&ListParams::default()).await.unwrap();
    let status_conflicts: u32 = list
        .items
        .iter()
        .map(|o| o.status.as_ref().unwrap().conflicts)
        .sum();
    assert_eq!(
        status_conflicts as usize, refused,
        "every conflict is counted in some order's status"
    );
    let retried = list
        .items
        .iter()
        .find(|o| o.status.as_ref().unwrap().conflicts > 0)
        .unwrap();
    let last = retried
        .status
        .as_ref()
        .unwrap()
        .last_update
        .as_ref()
        .unwrap();
    assert!(
        last.attempts > 1,
        "{}: attempts {}",
        retried.name_any(),
        last.attempts
    );
    assert_eq!(
        env.client_writes().len(),
        ORDERS,
        "one accepted PATCH per order in the end"
    );
    let conflicts_metric = operator
        .metric_sum("sales_order_operator_d365_conflicts_total")
        .await;
    assert_eq!(
        conflicts_metric as usize, refused,
        "metric counts the same conflicts"
    );
    assert_history_is_safe(&env);
}

/// Orders of the heavy test: the fleet the issue measured (99 % Ready in
/// 36 s, 100 % after 272 s when conflicts shared the 5-minute error cap).
const FLEET: usize = 1_000;
const CONFLICT_CAP: Duration = Duration::from_secs(16);

/// 1,000 orders at 40 % conflicts reach Ready within 1.5 x the conflict
/// schedule's simulated bound (reconcile::simulate) for the configured cap,
/// counted from when every object exists. Heavy (~2 minutes on 2 cores):
/// `cargo test --test e2e thousand -- --ignored --nocapture`.
#[ignore = "heavy (~2 min): cargo test --test e2e thousand -- --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_orders_at_forty_percent_conflicts_converge_within_the_schedules_bound() {
    let faults = Faults {
        conflict_rate: 0.4,
        ..Faults::default()
    };
    let env = env("conflict-tail", FLEET, faults).await;
    let api = env.orders();
    crate::support::create_orders_concurrently(&api, (1..=FLEET).map(SalesOrderStatus::test), 16)
        .await;
    let bound = conflict_bound(CONFLICT_CAP, FLEET, 0.4);
    let limit = bound.mul_f64(1.5);
    let started = Instant::now();
    let cap = format!("{}s", CONFLICT_CAP.as_secs());
    let operator = env.operator(&["--conflict-backoff-cap", &cap]);
    // The operator's own count, cheap to poll (listing 1,000 objects is not).
    let ready = |metrics: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(r#"sales_order_operator_objects{reason="Updated","#)
                    || l.starts_with(r#"sales_order_operator_objects{reason="InSync","#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let converged = testkit::wait_for(limit, || async {
        (ready(&operator.metrics().await) as usize >= FLEET).then(|| started.elapsed())
    })
    .await;
    let took = converged.unwrap_or_else(|_| panic!("not all {FLEET} Ready within {limit:?}"));
    println!(
        "{FLEET} orders, 40 % conflicts, conflict cap {cap}: all Ready after {:.1} s \
         (simulated bound {:.1} s, limit {:.1} s)",
        took.as_secs_f64(),
        bound.as_secs_f64(),
        limit.as_secs_f64()
    );
    wait_all(
        &env.client,
        &env.ns,
        FLEET,
        &["Updated"],
        Duration::from_secs(30),
    )
    .await;
    let refused = env
        .emu
        .history()
        .iter()
        .filter(|w| !w.accepted && w.source == WriteSource::Client)
        .count();
    assert!(
        refused > FLEET / 4,
        "40 % conflicts refuse many writes: {refused}"
    );
    assert_eq!(
        env.client_writes().len(),
        FLEET,
        "one accepted PATCH per order"
    );
    assert_history_is_safe(&env);
}
