//! The chart with `shards`: one Deployment per shard, each told its index
//! and the count, each electing its leader on its own Lease (named by the
//! operator's own rule), and RBAC for exactly those Leases. One shard
//! renders as before sharding existed.

use std::collections::BTreeSet;

use crate::helm::{name, of_kind, render, run_helm};
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
