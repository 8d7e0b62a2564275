//! The chart's RBAC on a real kube-apiserver: the rendered ServiceAccount,
//! (Cluster)Roles and bindings are applied (not the Deployment: there is no
//! kubelet), then the real operator binary runs as that ServiceAccount (a
//! kubeconfig impersonating it) with the flags the Deployment's env would
//! give it. Sufficient: orders reconcile to Ready, in both RBAC modes.
//! Minimal: with one rule removed the operator fails with a clear Forbidden.

use std::time::Duration;

use crate::install::{Install, TIMEOUT, can_i, ready, wait_orders};
use crate::support::{connect, create_orders};
use d365_emulator::{Faults, WriteSource};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use sales_order_operator::api::{ConditionType, SalesOrderStatus};

#[tokio::test]
async fn cluster_scope_rbac_is_enough_to_reconcile_and_lead() {
    let cp = testkit::control_plane().await;
    let orders_ns = cp.namespace("rbac-cluster-orders").await;
    let selector = format!("operator.labelSelector=rbac-test={orders_ns}");
    let install = Install::render(cp, "rbac-cluster", &["rbac.scope=cluster", &selector]).await;
    install.apply(cp);
    let client = cp.client();
    let emu = crate::support::emulator(5, Faults::default()).await;
    connect(&client, &orders_ns, &emu).await;
    create_orders(
        &client,
        &orders_ns,
        (1..=5).map(|n| SalesOrderStatus::test(n).labelled("rbac-test", &orders_ns)),
    )
    .await;

    // WATCH_NAMESPACE is empty: all namespaces, as the ClusterRole allows.
    let op = install.start_operator(cp, "operator-0");
    wait_orders(&client, &orders_ns, 5, &op, "Ready", ready).await;
    let writes = emu
        .history()
        .iter()
        .filter(|w| w.source == WriteSource::Client && w.accepted)
        .count();
    assert_eq!(writes, 5, "one accepted PATCH per order");

    // The Lease (leader election's Role) is held by this pod.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &install.release_ns);
    let lease_name = crate::helm::env_var(&install.docs, "LEASE_NAME").unwrap();
    let lease = leases
        .get(&lease_name)
        .await
        .expect("the operator created its Lease");
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("operator-0")
    );
    assert_eq!(op.metric_sum("sales_order_operator_leader").await, 1.0);
    scrape_is_labelled_for_alerts(&op, &lease_name, &orders_ns).await;

    // Events (events.k8s.io/v1) were created for the updates.
    let events: Api<Event> = Api::namespaced(client.clone(), &orders_ns);
    testkit::wait_for(Duration::from_secs(30), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        (list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Updated"))
            .count()
            >= 5)
            .then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("no Updated events; log:\n{}", op.logs()));
    assert!(
        !op.logs().to_lowercase().contains("forbidden"),
        "{}",
        op.logs()
    );

    // Least privilege: nothing beyond what the code uses.
    let kc = install.kubeconfig(cp);
    let ns = orders_ns.as_str();
    for allowed in [
        &[
            "patch",
            "salesorderstatuses.d365.salesops.io",
            "--subresource=status",
            "-n",
            ns,
        ][..],
        &["get", "secrets", "-n", ns][..],
        // What cluster scope grants, as docs/operations.md says: every
        // Secret in the cluster (RBAC cannot hold it to labelled ones).
        &["list", "secrets", "-n", "kube-system"][..],
        &["create", "events.events.k8s.io", "-n", ns][..],
        &[
            "patch",
            &format!("leases.coordination.k8s.io/{lease_name}"),
            "-n",
            &install.release_ns,
        ][..],
    ] {
        assert!(can_i(cp, &kc, allowed), "should be allowed: {allowed:?}");
    }
    for denied in [
        &["patch", "salesorderstatuses.d365.salesops.io", "-n", ns][..],
        &["update", "salesorderstatuses.d365.salesops.io", "-n", ns][..],
        &["delete", "salesorderstatuses.d365.salesops.io", "-n", ns][..],
        &["create", "d365connections.d365.salesops.io", "-n", ns][..],
        &["create", "secrets", "-n", ns][..],
        &["update", "secrets", "-n", ns][..],
        &["create", "events", "-n", ns][..], // core/v1 events: not used
        &[
            "patch",
            "leases.coordination.k8s.io/someone-else",
            "-n",
            &install.release_ns,
        ][..],
        &["get", "leases.coordination.k8s.io", "-n", ns][..],
        &["list", "configmaps", "-n", ns][..],
    ] {
        assert!(!can_i(cp, &kc, denied), "should be denied: {denied:?}");
    }
}

#[tokio::test]
async fn namespaces_scope_rbac_watches_exactly_the_listed_namespaces() {
    let cp = testkit::control_plane().await;
    let (a, b, c) = (
        cp.namespace("rbac-ns-a").await,
        cp.namespace("rbac-ns-b").await,
        cp.namespace("rbac-ns-c").await,
    );
    let list = format!("watchNamespaces={{{a},{b}}}");
    // rbac.scope=namespaces is the default.
    let install = Install::render(cp, "rbac-ns", &[&list]).await;
    assert_eq!(
        crate::helm::env_var(&install.docs, "WATCH_NAMESPACE"),
        Some(format!("{a},{b}"))
    );
    install.apply(cp);
    let client = cp.client();
    let emu = crate::support::emulator(7, Faults::default()).await;
    for ns in [&a, &b, &c] {
        connect(&client, ns, &emu).await;
    }
    create_orders(&client, &a, (1..=3).map(SalesOrderStatus::test)).await;
    create_orders(&client, &b, (4..=6).map(SalesOrderStatus::test)).await;
    create_orders(&client, &c, [SalesOrderStatus::test(7)]).await;

    let op = install.start_operator(cp, "operator-0");
    wait_orders(&client, &a, 3, &op, "Ready", ready).await;
    wait_orders(&client, &b, 3, &op, "Ready", ready).await;
    assert!(
        !op.logs().to_lowercase().contains("forbidden"),
        "{}",
        op.logs()
    );

    // Namespace c has no Role: its order is never touched.
    let in_c = Api::<SalesOrderStatus>::namespaced(client.clone(), &c)
        .get("so-2025-0007")
        .await
        .unwrap();
    // Only the API server's default status (observedGeneration 0).
    assert!(
        in_c.status
            .as_ref()
            .is_some_and(|s| s.conditions.is_empty() && s.observed_generation == Some(0)),
        "unwatched namespace reconciled: {:?}",
        in_c.status
    );
    assert!(
        !emu.requests()
            .iter()
            .any(|r| r.sales_order_number.as_deref() == Some("SO-2025-0007"))
    );

    let kc = install.kubeconfig(cp);
    assert!(can_i(cp, &kc, &["get", "secrets", "-n", &a]));
    for denied in [
        &["get", "secrets", "-n", &c][..],
        &["list", "secrets", "-n", "kube-system"][..],
        &["list", "secrets", "--all-namespaces"][..],
    ] {
        assert!(
            !can_i(cp, &kc, denied),
            "no Secret access outside watchNamespaces: {denied:?}"
        );
    }
    assert!(!can_i(
        cp,
        &kc,
        &[
            "list",
            "salesorderstatuses.d365.salesops.io",
            "--all-namespaces"
        ]
    ));
}

#[tokio::test]
async fn without_secrets_get_orders_stall_with_a_clear_forbidden() {
    let cp = testkit::control_plane().await;
    let orders_ns = cp.namespace("rbac-nosecret-orders").await;
    let list = format!("watchNamespaces={{{orders_ns}}}");
    let mut install = Install::render(cp, "rbac-nosecret", &["rbac.scope=namespaces", &list]).await;
    for rules in install.operator_rules() {
        let secrets = rules
            .as_sequence_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["resources"][0] == "secrets")
            .unwrap();
        secrets["verbs"] = serde_yaml::from_str("[list, watch]").unwrap(); // "get" removed
    }
    install.apply(cp);
    let client = cp.client();
    let emu = crate::support::emulator(3, Faults::default()).await;
    connect(&client, &orders_ns, &emu).await;
    create_orders(&client, &orders_ns, (1..=3).map(SalesOrderStatus::test)).await;

    let op = install.start_operator(cp, "operator-0");
    wait_orders(
        &client,
        &orders_ns,
        3,
        &op,
        "ConnectionNotReady/forbidden",
        |status, reason, message| {
            status == "False"
                && reason == "ConnectionNotReady"
                && message.contains("forbidden")
                && message.contains("secrets")
        },
    )
    .await;
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), &orders_ns);
    let o = orders.get("so-2025-0001").await.unwrap();
    let stalled = o.condition(ConditionType::Stalled).unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "ConnectionNotReady")
    );
    eprintln!("condition message without secrets get: {}", stalled.message);
    assert!(
        op.logs().contains("cannot get resource"),
        "log lacks the Forbidden:\n{}",
        op.logs()
    );
    assert_eq!(
        emu.requests().len() + emu.token_requests() as usize,
        0,
        "no D365 traffic without credentials: {:?}",
        emu.requests()
    );
}

#[tokio::test]
async fn without_status_patch_the_forbidden_write_is_logged() {
    let cp = testkit::control_plane().await;
    let orders_ns = cp.namespace("rbac-nostatus-orders").await;
    let list = format!("watchNamespaces={{{orders_ns}}}");
    let mut install = Install::render(cp, "rbac-nostatus", &["rbac.scope=namespaces", &list]).await;
    for rules in install.operator_rules() {
        let rules = rules.as_sequence_mut().unwrap();
        let before = rules.len();
        rules.retain(|r| r["resources"][0] != "salesorderstatuses/status");
        assert_eq!(rules.len(), before - 1);
    }
    install.apply(cp);
    let client = cp.client();
    let emu = crate::support::emulator(2, Faults::default()).await;
    connect(&client, &orders_ns, &emu).await;
    create_orders(&client, &orders_ns, (1..=2).map(SalesOrderStatus::test)).await;

    let op = install.start_operator(cp, "operator-0");
    let needle = r#"cannot patch resource \"salesorderstatuses/status\""#;
    testkit::wait_for(TIMEOUT, || async {
        op.logs().contains(needle).then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("no Forbidden status write in the log:\n{}", op.logs()));
    let line = op
        .logs()
        .lines()
        .find(|l| l.contains(needle))
        .unwrap()
        .to_owned();
    eprintln!("operator log line without the status rule: {line}");
    assert!(line.contains("writing status of"), "{line}");
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), &orders_ns);
    assert!(
        orders
            .get("so-2025-0001")
            .await
            .unwrap()
            .status
            .is_some_and(|s| s.conditions.is_empty() && s.observed_generation == Some(0)),
        "status cannot have been written (only the API server's default)"
    );
}

/// A live scrape carries what the alerts and the dashboard key on: the
/// leader gauge by Lease, the objects gauge by the ORDER's namespace and
/// connection (the operator runs in another namespace here), build_info
/// and the process metrics.
async fn scrape_is_labelled_for_alerts(
    op: &crate::support::Operator,
    lease: &str,
    orders_ns: &str,
) {
    let leader = format!(r#"sales_order_operator_leader{{lease="{lease}"}}"#);
    assert_eq!(op.metric_sum(&leader).await, 1.0);
    let connection = sales_order_operator::fixtures::CONNECTION;
    let text = op.metrics().await;
    let objects: f64 = text
        .lines()
        .filter(|l| l.starts_with("sales_order_operator_objects{"))
        .filter(|l| {
            l.contains(&format!(
                r#"namespace="{orders_ns}",connection="{connection}"}}"#
            ))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(objects, 5.0, "{text}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            r#"sales_order_operator_build_info{{version="{version}""#
        )),
        "{text}"
    );
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(op.metric_sum(name).await > 0.0, "{name} in {text}");
    }
}
