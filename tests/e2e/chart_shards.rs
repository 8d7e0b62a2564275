//! The chart with `shards`: one Deployment per shard, each told its index
//! and the count, each electing its leader on its own Lease (named by the
//! operator's own rule), and RBAC for exactly those Leases, enough on a
//! real API server. One shard renders as before sharding existed.

use std::collections::BTreeSet;

use crate::helm::{name, of_kind, render, run_helm};
use crate::install::{Install, can_i, ready, wait_orders};
use crate::support::{connect, create_orders};
use d365_emulator::{Faults, WriteSource};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::controller::Shard;
use serde_yaml::Value;

/// One Deployment's container environment variable.
fn var(deployment: &Value, var: &str) -> String {
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    env.as_sequence()
        .expect("container env")
        .iter()
        .find(|e| e["name"] == var)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{} sets no {var}", name(deployment)))
        .to_owned()
}

/// The Lease a Deployment's replicas compete for: what the operator makes
/// of the LEASE_NAME, SHARD_INDEX and SHARD_COUNT the chart gives it.
fn lease(deployment: &Value) -> String {
    let index = var(deployment, "SHARD_INDEX").parse().unwrap();
    let count = var(deployment, "SHARD_COUNT").parse().unwrap();
    let shard = Shard::new(index, count).expect("a valid shard");
    shard.lease_name(&var(deployment, "LEASE_NAME"))
}

/// The names the leader-election Role lets the operator get and patch.
fn leases_allowed(docs: &[Value]) -> BTreeSet<String> {
    let role = of_kind(docs, "Role")
        .into_iter()
        .find(|r| name(r).ends_with("-leader-election"))
        .expect("lease Role");
    role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|r| r["resourceNames"].as_sequence())
        .flatten()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_shards_render_two_deployments_with_disjoint_indexes_and_leases() {
    let docs = render(
        "so",
        "ops",
        &["--set", "shards=2", "--set", "replicaCount=2"],
    );
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 2);
    let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "so-sales-order-operator-shard-0",
            "so-sales-order-operator-shard-1"
        ])
    );
    let indexes: BTreeSet<String> = deployments.iter().map(|d| var(d, "SHARD_INDEX")).collect();
    assert_eq!(indexes, BTreeSet::from(["0".into(), "1".into()]));
    assert!(deployments.iter().all(|d| var(d, "SHARD_COUNT") == "2"));
    assert!(
        deployments
            .iter()
            .all(|d| d["spec"]["replicas"].as_u64() == Some(2))
    );
    let leases: BTreeSet<String> = deployments.iter().map(|d| lease(d)).collect();
    assert_eq!(leases.len(), 2, "shards share a Lease: {leases:?}");
    assert_eq!(
        leases,
        leases_allowed(&docs),
        "RBAC for exactly the shards' Leases"
    );
    // Each Deployment selects only its own pods, and the pods carry it.
    let selectors: BTreeSet<String> = deployments
        .iter()
        .map(|d| {
            let selector = &d["spec"]["selector"]["matchLabels"];
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            for (k, v) in selector.as_mapping().unwrap() {
                assert_eq!(&labels[k], v, "{}: pods lack selector label {k:?}", name(d));
            }
            serde_yaml::to_string(selector).unwrap()
        })
        .collect();
    assert_eq!(selectors.len(), 2, "overlapping selectors");
    // The Service still reaches every shard's metrics.
    let service = &of_kind(&docs, "Service")[0]["spec"]["selector"];
    for d in &deployments {
        for (k, v) in service.as_mapping().unwrap() {
            assert_eq!(&d["spec"]["template"]["metadata"]["labels"][k], v);
        }
    }
}

/// An unsharded install keeps its Deployment, selector and Lease, so an
/// upgrade to this chart needs no migration.
#[test]
fn one_shard_keeps_the_unsharded_names() {
    let docs = render("so", "ops", &[]);
    let deployments = of_kind(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    let d = deployments[0];
    assert_eq!(name(d), "so-sales-order-operator");
    assert_eq!(var(d, "SHARD_COUNT"), "1");
    assert_eq!(lease(d), var(d, "LEASE_NAME"));
    assert_eq!(leases_allowed(&docs), BTreeSet::from([lease(d)]));
    let selector = d["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
    assert!(
        selector
            .keys()
            .all(|k| k.as_str() != Some("d365.salesops.io/shard"))
    );
}

#[test]
fn shard_counts_outside_1_to_64_are_refused() {
    let chart = crate::helm::chart_dir();
    let lint = |value: &str| {
        let set = format!("shards={value}");
        run_helm(&["lint", "--strict", chart.to_str().unwrap(), "--set", &set])
    };
    for bad in ["0", "65", "two"] {
        assert!(!lint(bad).status.success(), "shards={bad} accepted");
    }
    for good in ["1", "3", "64"] {
        let out = lint(good);
        assert!(
            out.status.success(),
            "shards={good}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The sharded chart's RBAC on a real API server: one operator per
/// rendered Deployment, as its ServiceAccount with its Deployment's env,
/// each leads on its own Lease (which RBAC allows it to patch, and no
/// other), and together they converge every order, each written once.
#[tokio::test]
async fn sharded_rbac_lets_each_shard_lead_on_its_own_lease() {
    let cp = testkit::control_plane().await;
    let install = Install::render(cp, "rbac-shards", &["shards=2"]).await;
    install.apply(cp);
    let (client, ns) = (cp.client(), install.release_ns.clone());
    let emu = crate::support::emulator(12, Faults::default()).await;
    connect(&client, &ns, &emu).await;
    create_orders(&client, &ns, (1..=12).map(SalesOrderStatus::test)).await;

    let deployments = of_kind(&install.docs, "Deployment");
    let ops: Vec<_> = deployments
        .iter()
        .map(|d| install.start_operator_of(cp, &format!("{}-pod", name(d)), d))
        .collect();
    for op in &ops {
        wait_orders(&client, &ns, 12, op, "Ready", ready).await;
    }
    let writes: Vec<String> = emu
        .history()
        .iter()
        .filter(|w| w.source == WriteSource::Client && w.accepted)
        .map(|w| w.sales_order_number.clone())
        .collect();
    assert_eq!(writes.len(), 12, "one accepted PATCH per order: {writes:?}");
    assert_eq!(writes.iter().collect::<BTreeSet<_>>().len(), 12);

    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let kc = install.kubeconfig(cp);
    for (d, op) in deployments.iter().zip(&ops) {
        let lease_name = lease(d);
        let held = leases.get(&lease_name).await.expect("the shard's Lease");
        let pod = format!("{}-pod", name(d));
        assert_eq!(held.spec.unwrap().holder_identity, Some(pod));
        let object = format!("leases.coordination.k8s.io/{lease_name}");
        assert!(can_i(cp, &kc, &["patch", &object, "-n", &ns]));
        assert!(
            !op.logs().to_lowercase().contains("forbidden"),
            "{}",
            op.logs()
        );
    }
    let unsharded = format!(
        "leases.coordination.k8s.io/{}",
        var(deployments[0], "LEASE_NAME")
    );
    assert!(!can_i(cp, &kc, &["patch", &unsharded, "-n", &ns]));
}
