//! Throttle isolation (issue 9): a connection paused by D365's service
//! protection holds none of the controller's reconcile slots. With only 4
//! slots, connection A answering every request 429 `Retry-After: 120` for
//! its 100 orders does not delay a change on connection B; A's orders wait
//! as Throttled (Reconciling, not Stalled) and converge after the pause.
//! A merely busy connection turns its extra orders away without a status
//! write.

use sales_order_operator::fixtures::Placed;
use std::time::{Duration, Instant};

use d365_emulator::Faults;
use kube::api::{Api, ListParams, Patch, PatchParams};
use sales_order_operator::api::{ConditionType, D365Connection, SalesOrderStatus, SalesStatus};
use sales_order_operator::fixtures::{CONNECTION, order_number};

use crate::support::{
    Env, Operator, create_connection, create_orders, emulator, env, wait_all, wait_reason,
};

const PAUSED_ORDERS: usize = 100;
const PAUSE_SECS: u64 = 120;
const SLOTS: usize = 4;
/// What "does not delay" means here (issue 9).
const MAX_DELAY: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_connection_does_not_delay_a_change_on_another() {
    let resource_throttling = Faults {
        throttle_retry_after: Some(PAUSE_SECS),
        ..Faults::default()
    };
    let a = env("throttle", PAUSED_ORDERS, resource_throttling).await;
    let b = emulator(1, Faults::default()).await;
    let b_connection = D365Connection::test(&b.url()).named("b");
    create_connection(&a.client, &a.ns, b_connection).await;
    let a_orders = (1..=PAUSED_ORDERS).map(SalesOrderStatus::test);
    create_orders(&a.client, &a.ns, a_orders).await;
    let b_order = SalesOrderStatus::test(1).named("b-order").via("b");
    create_orders(&a.client, &a.ns, [b_order]).await;
    let operator = a.operator(&["--max-concurrent-reconciles", &SLOTS.to_string()]);

    wait_reason(&a, "b-order", "Updated").await;
    let all_throttled = testkit::wait_for(Duration::from_secs(60), || async {
        let throttled = a_reasons(&a)
            .await
            .iter()
            .filter(|(_, r)| r == "Throttled")
            .count();
        (throttled == PAUSED_ORDERS).then_some(Instant::now())
    })
    .await;
    let Ok(paused) = all_throttled else {
        panic!(
            "A's orders never all Throttled: {:?}",
            others(&a, "Throttled").await
        );
    };

    let delay = change_b(&a).await;
    eprintln!(
        "e2e_throttle: B's change Ready/Updated after {delay:?}, A paused for {PAUSE_SECS} s"
    );
    assert!(delay <= MAX_DELAY, "B waited {delay:?} for paused A");
    let in_b = b.order("usmf", &order_number(1)).expect("B's order");
    assert_eq!(in_b["SalesOrderStatus"], SalesStatus::Invoiced.as_str());

    a_waits_quietly(&a, &operator).await;

    // A recovers; its orders come back when the pause ends and converge.
    a.emu.set_faults(Faults::default());
    let converge = Duration::from_secs(PAUSE_SECS + 60).saturating_sub(paused.elapsed());
    let converged = testkit::wait_for(converge, || async {
        let reasons = a_reasons(&a).await;
        let updated = reasons.iter().filter(|(_, r)| r == "Updated").count();
        (updated == PAUSED_ORDERS).then_some(())
    })
    .await;
    if converged.is_err() {
        panic!("A did not converge: {:?}", others(&a, "Updated").await);
    }
    let writes = a.client_writes();
    assert_eq!(writes.len(), PAUSED_ORDERS, "one write per order of A");
    for w in &writes {
        assert_eq!(w.if_match.as_deref(), Some(w.etag_before.as_str()), "{w:?}");
    }
}

/// Changes B's order to Invoiced; returns how long it took to be
/// Ready/Updated for the new generation.
async fn change_b(env: &Env) -> Duration {
    let changed_at = Instant::now();
    let patch = serde_json::json!({"spec": {"salesStatus": "Invoiced"}});
    let changed = env
        .orders()
        .patch("b-order", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("change B's order");
    let generation = changed.metadata.generation;
    testkit::wait_for(Duration::from_secs(30), || async {
        let o = env.orders().get("b-order").await.ok()?;
        let ready = o.ready_condition()?;
        (ready.reason == "Updated" && ready.observed_generation == generation).then_some(())
    })
    .await
    .expect("B's change reaches Ready/Updated");
    changed_at.elapsed()
}

/// A during its pause: Reconciling (Throttled), not Stalled; nothing sent
/// but the requests that met the first 429s; the pause counted.
async fn a_waits_quietly(env: &Env, operator: &Operator) {
    for o in env
        .orders()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        if o.spec.connection_ref.name == "b" {
            continue;
        }
        let status = |kind| o.condition(kind).map(|c| c.status.as_str());
        let (reconciling, stalled) = (
            status(ConditionType::Reconciling),
            status(ConditionType::Stalled),
        );
        assert_eq!(
            (reconciling, stalled),
            (Some("True"), None),
            "{:?}",
            o.status
        );
    }
    // The connection check's one `$metadata` read is no reconcile slot's:
    // it is counted apart. Whichever request meets the first 429 pauses A;
    // if it is the check's, no order request is sent at all.
    let requests = env.emu.requests();
    let (metadata, orders): (Vec<_>, Vec<_>) = requests
        .iter()
        .filter(|r| r.path.starts_with("/data"))
        .partition(|r| r.path.starts_with("/data/$metadata"));
    assert!(metadata.len() <= 1, "{} $metadata reads", metadata.len());
    assert!(
        orders.len() <= SLOTS,
        "{} order requests reached paused A; at most one per slot may meet the first 429",
        orders.len()
    );
    assert!(metadata.len() + orders.len() >= 1, "nothing met the 429");
    let paused_requeues = operator
        .metric_sum(r#"sales_order_operator_connection_requeues_total{cause="paused"}"#)
        .await;
    assert!(
        paused_requeues >= (PAUSED_ORDERS - SLOTS) as f64,
        "{paused_requeues} paused requeues"
    );
}

/// Ready reasons of connection A's orders (all but B's), by name.
async fn a_reasons(env: &Env) -> Vec<(String, String)> {
    crate::support::ready_reasons(&env.client, &env.ns)
        .await
        .into_iter()
        .filter(|(name, _, _)| name != "b-order")
        .map(|(name, _, reason)| (name, reason.unwrap_or_default()))
        .collect()
}

/// Up to ten of A's orders whose reason is not `reason`, for a failure.
async fn others(env: &Env, reason: &str) -> Vec<(String, String)> {
    let mut rest = a_reasons(env).await;
    rest.retain(|(_, r)| r != reason);
    rest.truncate(10);
    rest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_turns_orders_away_without_writing_status() {
    const ORDERS: usize = 6;
    let slow = Faults {
        latency_ms: 200,
        ..Faults::default()
    };
    let env = env("busy", ORDERS, slow).await;
    // One reconcile of this connection in D365 at a time.
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let limits =
        serde_json::json!({"spec": {"maxRequestsPerSecond": 2, "maxConcurrentRequests": 1}});
    conns
        .patch(CONNECTION, &PatchParams::default(), &Patch::Merge(&limits))
        .await
        .expect("lower the connection's limits");
    create_orders(
        &env.client,
        &env.ns,
        (1..=ORDERS).map(SalesOrderStatus::test),
    )
    .await;
    let operator = env.operator(&[]);
    wait_all(
        &env.client,
        &env.ns,
        ORDERS,
        &["Updated"],
        Duration::from_secs(60),
    )
    .await;

    let busy = operator
        .metric_sum(r#"sales_order_operator_connection_requeues_total{cause="busy"}"#)
        .await;
    assert!(
        busy >= 1.0,
        "the orders arrived together; one went in at a time"
    );
    let writes = operator
        .metric_sum("sales_order_operator_status_writes_total")
        .await;
    assert_eq!(
        writes, ORDERS as f64,
        "one status write per order: Updated, nothing for a turn-away"
    );
    let requeued = operator
        .metric_sum(r#"controller_runtime_reconcile_total{controller="salesorderstatus",result="requeue_after"}"#)
        .await;
    assert_eq!(requeued, busy, "a turn-away is a requeue, not an error");
    assert_eq!(env.client_writes().len(), ORDERS);
}
