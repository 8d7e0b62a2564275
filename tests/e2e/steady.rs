//! Steady state on the real control plane: once every order is Updated,
//! the resyncs that follow (the first one included, after a 204 that
//! carried no ETag) read D365 and write nothing to Kubernetes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{Env, env, wait_all};
use d365_emulator::Faults;
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::order_number;

const ORDERS: usize = 20;
/// Resync rounds watched after the updates: the first is the one that used
/// to rewrite every status.
const ROUNDS: usize = 2;
const WRITES: &str = "sales_order_operator_status_writes_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_after_updates_write_no_status() {
    let env = env("steady", ORDERS, Faults::default()).await;
    steady_state(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_after_batched_updates_write_no_status() {
    let env = env("steady-batch", ORDERS, Faults::default()).await;
    let conns: kube::Api<D365Connection> = kube::Api::namespaced(env.client.clone(), &env.ns);
    let patch = serde_json::json!({
        "spec": {"batch": {"maxOperations": 10, "windowMilliseconds": 20}}
    });
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("enable batching");
    steady_state(&env).await;
}

/// Creates orders that all need a PATCH, waits until all are Updated, then
/// watches `ROUNDS` resyncs of every order and asserts none wrote status.
async fn steady_state(env: &Env) {
    let orders = (1..=ORDERS).map(SalesOrderStatus::test);
    crate::support::create_orders(&env.client, &env.ns, orders).await;
    let operator = env.operator(&["--resync-interval", "2s"]);
    wait_all(
        &env.client,
        &env.ns,
        ORDERS,
        &["Updated"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(env.client_writes().len(), ORDERS, "one write per order");

    let versions = resource_versions(env).await;
    let writes_before = operator.metric_sum(WRITES).await;
    assert!(
        writes_before >= ORDERS as f64,
        "{writes_before} status writes"
    );
    let gets_before = gets_per_order(env);

    // Each resync of an order is one GET of it in the emulator.
    let rounds = testkit::wait_for(Duration::from_secs(30), || async {
        let now = gets_per_order(env);
        (1..=ORDERS)
            .all(|n| {
                let number = order_number(n);
                let before = gets_before.get(&number).copied().unwrap_or(0);
                now.get(&number).copied().unwrap_or(0) >= before + ROUNDS
            })
            .then_some(())
    })
    .await;
    assert!(
        rounds.is_ok(),
        "not every order resynced {ROUNDS} times in 30 s"
    );

    let after = resource_versions(env).await;
    let changed: Vec<_> = versions
        .iter()
        .filter(|(name, rv)| after.get(*name) != Some(*rv))
        .map(|(name, _)| name)
        .collect();
    let writes_after = operator.metric_sum(WRITES).await;
    eprintln!(
        "steady: {} of {ORDERS} orders rewritten, {} status writes in {ROUNDS} resync rounds",
        changed.len(),
        writes_after - writes_before
    );
    assert!(
        changed.is_empty(),
        "status rewritten on resync: {changed:?}"
    );
    assert_eq!(writes_after, writes_before, "status writes during resyncs");
    assert_eq!(
        env.client_writes().len(),
        ORDERS,
        "no D365 writes on resync"
    );
}

/// `metadata.resourceVersion` of every order, by name.
async fn resource_versions(env: &Env) -> BTreeMap<String, String> {
    let list = env
        .orders()
        .list(&ListParams::default())
        .await
        .expect("list orders");
    list.items
        .iter()
        .map(|o| (o.name_any(), o.resource_version().unwrap_or_default()))
        .collect()
}

/// GETs of each order the emulator answered, batched or not.
fn gets_per_order(env: &Env) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in env.emu.requests() {
        if r.method != "GET" {
            continue;
        }
        // A bulk read is a read of every order it returned.
        for number in r.sales_order_number.into_iter().chain(r.rows) {
            *counts.entry(number).or_default() += 1;
        }
    }
    counts
}

/// A field D365 no longer shows leaves `status.observed` at the next read,
/// and the resyncs after it write nothing: the status write replaces the
/// status instead of merging into it (a merge kept the old date forever
/// and rewrote the status at every resync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_cleared_in_d365_leaves_the_status_and_resyncs_stay_quiet() {
    let env = env("steady-cleared", 1, Faults::default()).await;
    let number = order_number(1);
    let set = |date: &str| {
        let fields = serde_json::json!({"ConfirmedReceiptDate": date});
        env.emu
            .external_write(
                "usmf",
                &number,
                fields.as_object().cloned().unwrap_or_default(),
            )
            .expect("the emulator holds order 1")
    };
    set("2026-12-01T12:00:00Z");
    // The spec leaves the date to D365.
    let order = SalesOrderStatus::test(1).delivering(None);
    crate::support::create_orders(&env.client, &env.ns, [order]).await;
    let operator = env.operator(&["--resync-interval", "1s"]);
    let observed = |env: &Env| {
        let orders = env.orders();
        async move {
            let order = orders
                .get(&SalesOrderStatus::test(1).name_any())
                .await
                .ok()?;
            order.status?.observed
        }
    };
    let dated = testkit::wait_for(Duration::from_secs(60), || async {
        observed(&env).await.filter(|o| o.delivery_date.is_some())
    })
    .await
    .expect("the order observed with its delivery date");
    assert_eq!(dated.delivery_date.as_deref(), Some("2026-12-01"));

    // Someone clears the date in D365 (its unset marker).
    let cleared = set("1900-01-01T12:00:00Z");
    let seen = testkit::wait_for(Duration::from_secs(30), || async {
        observed(&env)
            .await
            .filter(|o| o.etag.as_deref() == Some(cleared.as_str()))
    })
    .await
    .expect("a resync observed the edit");
    assert_eq!(
        seen.delivery_date, None,
        "the old date stayed in the status"
    );

    // The next resyncs find the status as they would write it.
    let writes = operator.metric_sum(WRITES).await;
    let gets = |env: &Env| gets_per_order(env).get(&number).copied().unwrap_or(0);
    let reads = gets(&env);
    testkit::wait_for(Duration::from_secs(30), || async {
        (gets(&env) >= reads + ROUNDS).then_some(())
    })
    .await
    .expect("the order resynced");
    assert_eq!(
        operator.metric_sum(WRITES).await,
        writes,
        "status writes during resyncs"
    );
}
