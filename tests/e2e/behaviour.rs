//! End to end on a real kube-apiserver: policies, Stalled reasons without
//! retry storms, steady state without writes, triggers, duplicates, and
//! what a user sees through kubectl.

use sales_order_operator::fixtures::Placed;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{Env, env, wait_all, wait_reason};
use d365_emulator::Faults;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use sales_order_operator::api::{
    ConditionType, RECONCILE_REQUESTED_AT, SalesOrderStatus, SalesStatus,
};
use sales_order_operator::fixtures::order_number;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_and_suspend_never_write() {
    let env = env("policies", 3, Faults::default()).await;
    let _op = env.operator(&[]);
    let observe = SalesOrderStatus::test(1).observing();
    let suspended = SalesOrderStatus::test(2).suspended();
    crate::support::create_orders(
        &env.client,
        &env.ns,
        [observe, suspended, SalesOrderStatus::test(3)],
    )
    .await;
    let drifted = wait_reason(&env, "so-2025-0001", "Drifted").await;
    assert_eq!(
        drifted
            .status
            .unwrap()
            .observed
            .unwrap()
            .sales_status
            .as_deref(),
        Some("Backorder")
    );
    wait_reason(&env, "so-2025-0002", "Suspended").await;
    wait_reason(&env, "so-2025-0003", "Updated").await;
    let writes = env.client_writes();
    assert_eq!(
        writes.len(),
        1,
        "only the Enforce order is written: {writes:?}"
    );
    assert_eq!(writes[0].sales_order_number, order_number(3));
    assert_eq!(
        env.requests_for(&order_number(2)),
        0,
        "a suspended order sends nothing"
    );

    // Un-suspending resumes writes.
    let patch = json!({"spec": {"suspend": false}});
    env.orders()
        .patch(
            "so-2025-0002",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_reason(&env, "so-2025-0002", "Updated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_orders_wait_for_a_human_without_retry_storms() {
    let env = env(
        "stalled",
        4,
        Faults {
            read_only_companies: vec!["usrt".into()],
            ..Faults::default()
        },
    )
    .await;
    // SO-2025-0003 is already Invoiced: a final status.
    env.emu.external_write(
        "usmf",
        &order_number(3),
        json!({"SalesOrderStatus": "Invoiced"})
            .as_object()
            .unwrap()
            .clone(),
    );
    env.emu.put_order(json!({"dataAreaId": "usrt", "SalesOrderNumber": "SO-RT-1", "SalesOrderStatus": "Backorder"}));
    let op = env.operator(&[]);
    let forbidden = SalesOrderStatus::test(1)
        .named("forbidden")
        .for_order("USRT", "SO-RT-1");
    let missing = SalesOrderStatus::test(9999).named("missing");
    let invalid = SalesOrderStatus::test(3).named("invalid");
    crate::support::create_orders(&env.client, &env.ns, [forbidden, missing, invalid]).await;
    for (name, reason) in [
        ("forbidden", "Forbidden"),
        ("missing", "NotFound"),
        ("invalid", "InvalidTransition"),
    ] {
        let o = wait_reason(&env, name, reason).await;
        let stalled = o.condition(ConditionType::Stalled).unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", reason)
        );
    }
    let before = [
        env.requests_for("SO-RT-1"),
        env.requests_for(&order_number(9999)),
        env.requests_for(&order_number(3)),
    ];
    assert_eq!(
        before,
        [2, 1, 1],
        "forbidden: GET + refused PATCH; missing: GET; invalid: GET, no PATCH"
    );

    // A canary created afterwards converges; meanwhile the stalled ones send nothing more.
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(4)]).await;
    wait_reason(&env, "so-2025-0004", "Updated").await;
    let after = [
        env.requests_for("SO-RT-1"),
        env.requests_for(&order_number(9999)),
        env.requests_for(&order_number(3)),
    ];
    assert_eq!(before, after, "no retry storm");
    assert_eq!(
        op.metric_sum(r#"sales_order_operator_objects{reason="Forbidden","#)
            .await,
        1.0
    );

    // Each Stalled reason is an Event a user sees in kubectl describe.
    let describe = env
        .cp
        .kubectl(&["describe", "sos", "-n", &env.ns, "forbidden", "invalid"]);
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(
        text.contains("Forbidden") && text.contains("InvalidTransition"),
        "{text}"
    );
    assert!(text.contains("Warning"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_resyncs_write_nothing() {
    const N: usize = 30;
    let env = env("steady", N, Faults::default()).await;
    let op = env.operator(&["--resync-interval", "1s"]);
    crate::support::create_orders(&env.client, &env.ns, (1..=N).map(SalesOrderStatus::test)).await;
    wait_all(&env.client, &env.ns, N, &["Updated", "InSync"], WAIT).await;
    // Let the post-update resync settle, then take the baseline.
    let gets = |env: &Env| {
        env.emu
            .requests()
            .iter()
            .filter(|r| r.method == "GET")
            .count()
    };
    let settled = gets(&env) + 2 * N;
    testkit::wait_for(WAIT, || async { (gets(&env) >= settled).then_some(()) })
        .await
        .unwrap();
    let versions = |list: Vec<SalesOrderStatus>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|o| (o.name_any(), o.resource_version().unwrap()))
            .collect()
    };
    let before = versions(
        env.orders()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    );
    let writes_before = op
        .metric_sum("sales_order_operator_status_writes_total")
        .await;
    let target = gets(&env) + 3 * N;
    testkit::wait_for(WAIT, || async { (gets(&env) >= target).then_some(()) })
        .await
        .expect("three full resyncs");
    let after = versions(
        env.orders()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items,
    );
    assert_eq!(before, after, "resyncs changed resourceVersions");
    assert_eq!(
        op.metric_sum("sales_order_operator_status_writes_total")
            .await,
        writes_before
    );
    assert_eq!(env.client_writes().len(), N, "no D365 writes either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_triggers_an_immediate_reconcile_that_repairs_drift() {
    let env = env("trigger", 1, Faults::default()).await;
    let _op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    wait_reason(&env, "so-2025-0001", "Updated").await;
    // Someone sets the order back in D365; the 10 min resync would find it later.
    env.emu.external_write(
        "usmf",
        &order_number(1),
        json!({"SalesOrderStatus": "Backorder"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let patch =
        json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: "2026-11-25T15:00:00Z"}}});
    env.orders()
        .patch(
            "so-2025-0001",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    testkit::wait_for(WAIT, || async {
        (env.client_writes().len() == 2).then_some(())
    })
    .await
    .expect("a second PATCH repairs the drift");
    assert_eq!(
        env.emu.order("usmf", &order_number(1)).unwrap()["SalesOrderStatus"],
        "Delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_orders_have_one_writer_until_the_owner_goes() {
    let env = env("duplicates", 1, Faults::default()).await;
    let _op = env.operator(&[]);
    crate::support::create_orders(
        &env.client,
        &env.ns,
        [SalesOrderStatus::test(1).named("first")],
    )
    .await;
    wait_reason(&env, "first", "Updated").await;
    // The same order, its company in other case.
    let second = SalesOrderStatus::test(1)
        .wanting(SalesStatus::Canceled)
        .named("second")
        .for_order("usmf", &order_number(1));
    crate::support::create_orders(&env.client, &env.ns, [second]).await;
    let dup = wait_reason(&env, "second", "DuplicateOrder").await;
    assert!(dup.ready_condition().unwrap().message.contains("first"));
    assert_eq!(env.client_writes().len(), 1, "the duplicate never writes");
    env.orders()
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    wait_reason(&env, "second", "Updated").await;
    assert_eq!(
        env.emu.order("usmf", &order_number(1)).unwrap()["SalesOrderStatus"],
        "Canceled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_columns_waits_for_ready_and_describes_events() {
    let env = env("kubectl", 2, Faults::default()).await;
    let mut op = env.operator(&[]);
    crate::support::create_orders(
        &env.client,
        &env.ns,
        [
            SalesOrderStatus::test(1),
            SalesOrderStatus::test(2).wanting(SalesStatus::Invoiced),
        ],
    )
    .await;
    let wait = env.cp.kubectl(&[
        "wait",
        "-n",
        &env.ns,
        "--for=condition=Ready",
        "sos/so-2025-0001",
        "sos/so-2025-0002",
        "--timeout=60s",
    ]);
    assert!(
        wait.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&wait.stderr)
    );
    let get = env.cp.kubectl(&["get", "sos", "-n", &env.ns]);
    let table = String::from_utf8_lossy(&get.stdout);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "ORDER", "COMPANY", "DESIRED", "CURRENT", "READY", "REASON", "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("so-2025-0002"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[1..7],
        [
            "SO-2025-0002",
            "USMF",
            "Invoiced",
            "Invoiced",
            "True",
            "Updated"
        ],
        "{table}"
    );
    let describe = env
        .cp
        .kubectl(&["describe", "sos", "-n", &env.ns, "so-2025-0001"]);
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(
        text.contains("Normal") && text.contains("Updated") && text.contains("If-Match"),
        "{text}"
    );
    let short = env
        .cp
        .kubectl(&["get", "d365", "-n", &env.ns, "-o", "name"]);
    let names = String::from_utf8_lossy(&short.stdout);
    assert!(
        names.contains("d365connection") && names.contains("salesorderstatus"),
        "category d365 lists both: {names}"
    );

    // SIGTERM stops it cleanly, and nothing it logged or stored holds the secret.
    assert!(op.terminate(), "graceful exit on SIGTERM");
    let logs = op.logs();
    assert!(
        logs.contains("order updated") && logs.contains("etag_sent"),
        "requests and ETags are logged"
    );
    assert!(
        !logs.contains(d365_emulator::DEFAULT_CLIENT_SECRET),
        "the client secret leaked into the log"
    );
    assert!(
        !logs.to_lowercase().contains("bearer "),
        "a token leaked into the log"
    );
    let yaml = env
        .cp
        .kubectl(&["get", "sos,events", "-n", &env.ns, "-o", "yaml"]);
    assert!(!String::from_utf8_lossy(&yaml.stdout).contains(d365_emulator::DEFAULT_CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_that_never_moves_the_etag_is_called_out() {
    let faults = Faults {
        read_only_companies: vec!["usmf".into()],
        forbidden_as_conflict: true,
        ..Faults::default()
    };
    let env = env("hidden-403", 1, faults).await;
    let _op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let o = testkit::wait_for(WAIT, || async {
        let o = env.orders().get("so-2025-0001").await.ok()?;
        o.ready_condition()?
            .message
            .contains("no one else wrote")
            .then_some(o)
    })
    .await
    .expect("the repeated 409 on an unchanged ETag is called out");
    let status = o.status.unwrap();
    assert!(status.conflicts >= 2);
    assert_eq!(o.metadata.generation, status.observed_generation);
    assert!(env.client_writes().is_empty());
}
