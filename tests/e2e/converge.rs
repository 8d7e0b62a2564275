//! End to end on a real kube-apiserver + etcd: the operator binary, the CRDs
//! from crds/, and the D365 emulator. Many orders converge, with and without
//! injected conflicts, and the write history proves the locking protocol.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::support::{Env, env, wait_all};
use d365_emulator::{Faults, WriteSource};
use kube::ResourceExt;
use kube::api::ListParams;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures::order_number;

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
        metrics.contains(r#"d365_requests_total{method="PATCH",kind="entity",code="204"} 200"#),
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
    let operator = env.operator(&["--backoff-cap", "4s"]);
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
    let conflicts_metric = operator.metric_sum("d365_conflicts_total").await;
    assert_eq!(
        conflicts_metric as usize, refused,
        "metric counts the same conflicts"
    );
    assert_history_is_safe(&env);
}
