//! Two shards on one control plane and one emulator: shard 0 with a leader
//! and a standby, shard 1 with one replica, each shard on its own Lease.
//! Every order is written by exactly one shard, the one its company and
//! number hash to, and together they write all; when shard 0's leader is
//! SIGKILLed its standby takes shard 0's Lease and converges shard 0's new
//! orders, while shard 1 still never touches them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::leader::{LEASE, LeaseEnv, LeaseTiming, start_replica, wait_logged};
use crate::support::{Operator, create_orders, wait_all};
use d365_emulator::{Emulator, WriteSource};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::controller::shard::shard_of;
use sales_order_operator::fixtures::order_number;

const SHARDS: u32 = 2;

fn start_shard(kubeconfig: &Path, ns: &str, identity: &str, index: u32) -> Operator {
    let index = index.to_string();
    let count = SHARDS.to_string();
    let timing = LeaseTiming {
        seconds: 4,
        margin: "1s",
    };
    let extra = ["--shard-count", &count, "--shard-index", &index];
    start_replica(kubeconfig, (ns, ns), identity, timing, &extra)
}

fn lease_of(index: u32) -> String {
    format!("{LEASE}-shard-{index}")
}

async fn holder_of(leases: &Api<Lease>, index: u32) -> Option<String> {
    leases
        .get(&lease_of(index))
        .await
        .ok()?
        .spec?
        .holder_identity
}

/// The shard an order number (company USMF) belongs to.
fn home(number: &str) -> u32 {
    shard_of("USMF", number, SHARDS)
}

/// Accepted client writes: order number → the replicas (named in the
/// User-Agent) that wrote it.
fn writers(emu: &Emulator) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_order: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for w in emu.history() {
        if w.source == WriteSource::Client && w.accepted {
            let agent = w.agent.unwrap_or_default();
            let replica = ["s0-a", "s0-b", "s1-a"]
                .into_iter()
                .find(|r| agent.contains(&format!("({r})")))
                .unwrap_or_else(|| panic!("a write by an unknown agent {agent:?}"));
            by_order
                .entry(w.sales_order_number.to_uppercase())
                .or_default()
                .insert(replica.to_owned());
        }
    }
    by_order
}

/// Each of orders `1..=upto` written by exactly one replica of its own
/// shard; returns how many each shard took.
fn assert_disjoint(emu: &Emulator, upto: usize) -> [usize; 2] {
    let by_order = writers(emu);
    let all: BTreeSet<String> = (1..=upto).map(order_number).collect();
    let written: BTreeSet<String> = by_order.keys().cloned().collect();
    assert_eq!(written, all, "the shards together wrote every order");
    let mut sizes = [0; 2];
    for (number, replicas) in &by_order {
        let shard = home(number);
        let prefix = format!("s{shard}-");
        assert!(
            replicas.iter().all(|r| r.starts_with(&prefix)),
            "{number} (shard {shard}) written by {replicas:?}"
        );
        sizes[shard as usize] += 1;
    }
    sizes
}

async fn patches(op: &Operator) -> f64 {
    op.metric_sum(r#"d365_requests_total{method="PATCH""#).await
}

#[tokio::test]
async fn two_shards_split_orders_disjointly_and_fail_over_separately() {
    let LeaseEnv {
        cp,
        ns,
        client,
        emu,
        leases,
    } = LeaseEnv::new("shards", 60).await;
    let kubeconfig = cp.kubeconfig();
    let mut s0a = start_shard(kubeconfig, &ns, "s0-a", 0);
    wait_logged(&s0a, "became leader", Duration::from_secs(30)).await;
    let s0b = start_shard(kubeconfig, &ns, "s0-b", 0);
    let s1 = start_shard(kubeconfig, &ns, "s1-a", 1);
    wait_logged(&s0b, "waiting for leadership", Duration::from_secs(30)).await;
    wait_logged(&s1, "became leader", Duration::from_secs(30)).await;
    assert_eq!(holder_of(&leases, 0).await.as_deref(), Some("s0-a"));
    assert_eq!(holder_of(&leases, 1).await.as_deref(), Some("s1-a"));
    assert!(
        leases.get_opt(LEASE).await.unwrap().is_none(),
        "a sharded replica took the unsharded Lease"
    );

    create_orders(&client, &ns, (1..=40).map(SalesOrderStatus::test)).await;
    let timeout = Duration::from_secs(90);
    wait_all(&client, &ns, 40, &["Updated", "InSync"], timeout).await;
    let sizes = assert_disjoint(&emu, 40);
    assert!(sizes.iter().all(|s| *s >= 8), "a lopsided split: {sizes:?}");
    assert_eq!(patches(&s0a).await, sizes[0] as f64);
    assert_eq!(patches(&s1).await, sizes[1] as f64);
    assert_eq!(s0b.metric_sum("d365_requests_total").await, 0.0);

    // Shard 0's leader dies without releasing; its standby must take
    // shard 0's Lease (shard 1's stays put) and converge the next batch.
    s0a.kill();
    create_orders(&client, &ns, (41..=60).map(SalesOrderStatus::test)).await;
    wait_logged(&s0b, "became leader", Duration::from_secs(30)).await;
    wait_all(&client, &ns, 60, &["Updated", "InSync"], timeout).await;
    assert_eq!(holder_of(&leases, 0).await.as_deref(), Some("s0-b"));
    assert_eq!(holder_of(&leases, 1).await.as_deref(), Some("s1-a"));
    let sizes = assert_disjoint(&emu, 60);
    let late: BTreeMap<String, BTreeSet<String>> = writers(&emu)
        .into_iter()
        .filter(|(n, _)| n.as_str() > order_number(40).as_str() && home(n) == 0)
        .collect();
    assert!(!late.is_empty(), "shard 0 got none of the new orders");
    for (number, replicas) in &late {
        assert_eq!(replicas, &BTreeSet::from(["s0-b".to_owned()]), "{number}");
    }
    assert_eq!(patches(&s1).await, sizes[1] as f64);
    eprintln!("shards: split {sizes:?} of 60; shard 0 failed over to s0-b");
}
