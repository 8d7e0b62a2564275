//! End to end with `spec.batch` on the D365Connection: the operator binary
//! on a real kube-apiserver coalesces its PATCHes into `$batch` calls, and
//! 200 orders still converge with every write on the current ETag.

use std::time::Duration;

use crate::support::{env, wait_all};
use d365_emulator::Faults;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::D365Connection;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures::order_number;

const ORDERS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_converge_through_batches() {
    let env = env("batch", ORDERS, Faults::default()).await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = serde_json::json!({
        "spec": {"batch": {"maxOperations": 50, "windowMilliseconds": 20}}
    });
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("enable batching");
    let stored = conns.get("usmf").await.unwrap();
    let batch = stored.spec.batch.expect("spec.batch stored");
    assert_eq!((batch.max_operations, batch.window_milliseconds), (50, 20));

    // Orders first, then the operator: its first reconciles all come at
    // once, which is the load batching is for.
    let orders = (1..=ORDERS).map(SalesOrderStatus::test);
    crate::support::create_orders(&env.client, &env.ns, orders).await;
    let operator = env.operator(&[]);
    wait_all(
        &env.client,
        &env.ns,
        ORDERS,
        &["Updated", "InSync"],
        Duration::from_secs(120),
    )
    .await;

    let writes = env.client_writes();
    assert_eq!(writes.len(), ORDERS, "one accepted write per order");
    for w in &writes {
        assert!(w.via_batch, "write outside a batch: {w:?}");
        assert_eq!(w.if_match.as_deref(), Some(w.etag_before.as_str()), "{w:?}");
    }
    for n in 1..=ORDERS {
        let e = env.emu.order("usmf", &order_number(n)).unwrap();
        assert_eq!(e["SalesOrderStatus"], "Delivered");
    }
    let requests = env.emu.requests();
    let batches = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("$batch"))
        .count();
    let single_patches = requests.iter().filter(|r| r.method == "PATCH").count();
    eprintln!("e2e_batch: {batches} $batch POSTs for {ORDERS} orders");
    assert_eq!(single_patches, 0);
    assert!(
        (1..=ORDERS / 5).contains(&batches),
        "{batches} $batch POSTs for {ORDERS} orders"
    );
    let metrics = operator.metrics().await;
    assert!(
        metrics.contains(
            r#"sales_order_operator_d365_requests_total{method="POST",kind="batch",code="200"}"#
        ),
        "{metrics}"
    );
    assert!(operator.logs().contains("D365 batch"), "batches are logged");
}

/// With conflicts injected into batched PATCHes, every refused operation
/// counts in `sales_order_operator_d365_conflicts_total` although each `$batch` call answered
/// 200: the metric equals the emulator's refused client writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_inside_batches_are_counted() {
    const N: usize = 40;
    let faults = Faults {
        conflict_rate: 0.3,
        ..Faults::default()
    };
    let env = env("batch-conflicts", N, faults).await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = serde_json::json!({
        "spec": {"batch": {"maxOperations": 10, "windowMilliseconds": 20}}
    });
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("enable batching");
    let orders = (1..=N).map(SalesOrderStatus::test);
    crate::support::create_orders(&env.client, &env.ns, orders).await;
    let operator = env.operator(&[]);
    wait_all(
        &env.client,
        &env.ns,
        N,
        &["Updated"],
        Duration::from_secs(120),
    )
    .await;

    let refused = env
        .emu
        .history()
        .iter()
        .filter(|w| {
            w.source == d365_emulator::WriteSource::Client
                && !w.accepted
                && matches!(w.status, 409 | 412)
        })
        .inspect(|w| assert!(w.via_batch, "{w:?}"))
        .count();
    assert!(refused > 0, "30% conflicts over {N} orders refused none");
    let metrics = operator.metrics().await;
    let conflicts = operator
        .metric_sum("sales_order_operator_d365_conflicts_total ")
        .await;
    eprintln!(
        "e2e_batch: {refused} operations refused, sales_order_operator_d365_conflicts_total {conflicts}"
    );
    assert_eq!(conflicts, refused as f64, "{metrics}");
    let parts = operator
        .metric_sum(
            r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="412"}"#,
        )
        .await;
    assert_eq!(parts, refused as f64, "{metrics}");
    assert!(
        operator
            .metric_sum(
                r#"sales_order_operator_d365_requests_total{method="POST",kind="batch",code="200"}"#
            )
            .await
            >= 1.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"method="POST",kind="entity""#),
        "{metrics}"
    );
}
