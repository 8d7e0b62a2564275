//! Fencing on the real control plane. Two replicas reach the API server
//! each through its own testkit::Proxy; the leader's is cut. It still
//! reaches D365, and its caches hold orders a concurrent writer keeps
//! moving back (its resync and backoff are 1 s), so it goes on wanting to
//! write. The emulator's journal (which replica wrote, and when) must show
//! that it stopped by its deadline (last renewal plus lease minus margin,
//! so before the cut plus one lease), that it exited, and that the standby
//! took over only after and converged orders created after the cut. Run
//! with `--nocapture` for the measured times.

use std::path::Path;
use std::time::Duration;

use crate::leader::{
    LEASE, LeaseEnv, LeaseTiming, holder, logged_at, secs, start_replica, wait_logged,
};
use crate::support::{Operator, create_orders, wait_all};
use d365_emulator::{Emulator, WriteRecord, WriteSource};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures::order_number;
use serde_json::{Map, Value};
use testkit::{Proxy, wait_for};
use tokio::task::JoinHandle;

const IDS: [&str; 2] = ["fence-a", "fence-b"];
const LEASE_SECONDS: u64 = 5;
const MARGIN_MS: u64 = 1000;
/// Orders converged before the cut (and then drifted), and after it.
const BEFORE: usize = 10;
const ALL: usize = 15;

fn start(kubeconfig: &Path, ns: &str, identity: &str) -> Operator {
    let margin = format!("{MARGIN_MS}ms");
    let timing = LeaseTiming {
        seconds: LEASE_SECONDS,
        margin: &margin,
    };
    // Re-read every order every second, retry failures within one: a
    // leader cut off keeps finding drift to undo.
    let extra = ["--resync-interval", "1s", "--backoff-cap", "1s"];
    start_replica(kubeconfig, (ns, ns), identity, timing, &extra)
}

/// Another D365 user moving orders 1..=n back to Backorder, one every
/// 100 ms, until aborted: drift the leader wants to undo (it wants
/// Delivered).
fn concurrent_writer(emu: Emulator, n: usize) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        for i in (1..=n).cycle() {
            pace.tick().await;
            let fields =
                Map::from_iter([("SalesOrderStatus".to_owned(), Value::from("Backorder"))]);
            let _ = emu.external_write("usmf", &order_number(i), fields);
        }
    })
}

/// The writes (accepted or not) whose User-Agent names `identity`.
fn writes_by(emu: &Emulator, identity: &str) -> Vec<WriteRecord> {
    let agent = format!(
        "sales-order-operator/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    );
    emu.history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client && w.agent.as_deref() == Some(&agent))
        .collect()
}

fn ms(t: Timestamp) -> u64 {
    t.as_millisecond().try_into().unwrap_or_default()
}

/// Two replicas, each reaching the API server through its own proxy.
struct Replicas {
    ops: Vec<Operator>,
    proxies: [Proxy; 2],
}

impl Replicas {
    async fn start(cp: &testkit::ControlPlane, ns: &str) -> Replicas {
        let proxies = [
            Proxy::start(cp.addr()).await.unwrap(),
            Proxy::start(cp.addr()).await.unwrap(),
        ];
        let ops = IDS
            .iter()
            .zip(&proxies)
            .map(|(id, proxy)| start(&cp.kubeconfig_through(proxy), ns, id))
            .collect();
        Replicas { ops, proxies }
    }

    /// (leader, standby) indices once the Lease has a holder.
    async fn leader(&self, leases: &Api<Lease>) -> (usize, usize) {
        let winner = wait_for(Duration::from_secs(30), || async { holder(leases).await })
            .await
            .expect("a Lease holder");
        let pair = if winner == IDS[0] { (0, 1) } else { (1, 0) };
        wait_logged(&self.ops[pair.0], "became leader", Duration::from_secs(10)).await;
        pair
    }

    /// Waits for replica `i` to end; its exit status.
    async fn exit_of(&mut self, i: usize, bound: Duration) -> std::process::ExitStatus {
        let op = &mut self.ops[i];
        let status = wait_for(bound, || {
            let exited = op.exited();
            async move { exited }
        })
        .await;
        status.unwrap_or_else(|_| panic!("{} never exited:\n{}", IDS[i], self.ops[i].logs()))
    }
}

/// Waits until `identity` has written orders 1..=BEFORE `count` times since
/// `since`: it is fighting the concurrent writer.
async fn wait_fighting(emu: &Emulator, identity: &str, since: Timestamp, count: usize) {
    wait_for(Duration::from_secs(30), || async {
        let fights = writes_by(emu, identity)
            .iter()
            .filter(|w| w.at_ms >= ms(since) && w.sales_order_number <= order_number(BEFORE))
            .count();
        (fights >= count).then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("{identity} never undid the drift {count} times"));
}

/// When every order 1..=ALL is Delivered in D365.
async fn wait_converged(emu: &Emulator) -> Timestamp {
    wait_for(Duration::from_secs(60), || async {
        (1..=ALL)
            .all(|n| {
                emu.order("usmf", &order_number(n))
                    .is_some_and(|o| o["SalesOrderStatus"] == "Delivered")
            })
            .then(Timestamp::now)
    })
    .await
    .expect("the new leader converges every order in D365")
}

#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_stops_writing_before_its_deadline() {
    let LeaseEnv {
        cp,
        ns,
        client,
        emu,
        leases,
    } = LeaseEnv::new("fencing", 30).await;
    let mut replicas = Replicas::start(cp, &ns).await;
    let (old, new) = replicas.leader(&leases).await;
    create_orders(&client, &ns, (1..=BEFORE).map(SalesOrderStatus::test)).await;
    let done = ["Updated", "InSync"];
    wait_all(&client, &ns, BEFORE, &done, Duration::from_secs(60)).await;

    // The leader is busy undoing a concurrent writer when it is cut off.
    let drift = concurrent_writer(emu.clone(), BEFORE);
    wait_fighting(&emu, IDS[old], Timestamp::now(), 1).await;
    let cut = Timestamp::now();
    replicas.proxies[old].cut();
    create_orders(&client, &ns, (BEFORE + 1..=ALL).map(SalesOrderStatus::test)).await;

    let bound = Duration::from_secs(LEASE_SECONDS + 10);
    let status = replicas.exit_of(old, bound).await;
    assert!(!status.success(), "exits non-zero, to restart as a standby");
    let lost = logged_at(&replicas.ops[old], "lost the leader lease; exiting")
        .expect("it says why it exits");
    let took_over = wait_logged(&replicas.ops[new], "became leader", bound).await;
    // The drift goes on until the new leader has fought it for a while: an
    // old leader still writing would show in the journal by then.
    wait_fighting(&emu, IDS[new], took_over, 2 * BEFORE).await;
    drift.abort();
    let converged = wait_converged(&emu).await;
    wait_all(&client, &ns, ALL, &done, Duration::from_secs(60)).await;

    let (old_last, new_first) = check_journal(&emu, (old, new), cut, lost);
    let after_cut = |at_ms: u64| (at_ms as f64 - ms(cut) as f64) / 1000.0;
    eprintln!(
        "fencing: lease {LEASE_SECONDS}s, margin {MARGIN_MS}ms; after the cut the old leader wrote until +{:.2}s, its deadline (exit) came at +{:.2}s, the standby led at +{:.2}s and wrote first at +{:.2}s; all {ALL} orders Delivered at +{:.2}s; {} write(s) refused by the fence",
        after_cut(old_last),
        secs(cut, lost),
        secs(cut, took_over),
        after_cut(new_first),
        secs(cut, converged),
        replicas.ops[old]
            .logs()
            .matches("D365 write not sent")
            .count(),
    );
}

/// What the journal must show; returns the old leader's last write and
/// the new one's first (unix ms).
fn check_journal(
    emu: &Emulator,
    (old, new): (usize, usize),
    cut: Timestamp,
    lost: Timestamp,
) -> (u64, u64) {
    let (old_writes, new_writes) = (writes_by(emu, IDS[old]), writes_by(emu, IDS[new]));
    let client_writes = emu
        .history()
        .iter()
        .filter(|w| w.source == WriteSource::Client)
        .count();
    assert_eq!(
        old_writes.len() + new_writes.len(),
        client_writes,
        "every write names its replica"
    );
    let after_cut: Vec<u64> = old_writes
        .iter()
        .map(|w| w.at_ms)
        .filter(|t| *t >= ms(cut))
        .collect();
    // Else this test would prove nothing: without a fence it would go on.
    let old_last = *after_cut
        .iter()
        .max()
        .expect("the cut-off leader kept writing from its caches");
    let deadline_bound = ms(cut) + LEASE_SECONDS * 1000;
    assert!(
        old_last <= deadline_bound,
        "old leader wrote {}ms after cut + lease",
        old_last.saturating_sub(deadline_bound)
    );
    assert!(
        old_last <= ms(lost) + MARGIN_MS,
        "old leader wrote {}ms after its deadline",
        old_last - ms(lost)
    );
    let new_first = new_writes
        .iter()
        .map(|w| w.at_ms)
        .min()
        .expect("the new leader wrote");
    assert!(
        new_first > old_last,
        "two writers overlapped: new leader from {new_first}, old until {old_last}"
    );
    for n in BEFORE + 1..=ALL {
        let number = order_number(n);
        assert!(
            new_writes
                .iter()
                .any(|w| w.accepted && w.sales_order_number == number),
            "{number} (created after the cut) written by the new leader"
        );
    }
    (old_last, new_first)
}

/// A leader that reads another holder in the Lease (here written by hand,
/// as a replica with a faster clock might) stops writing and exits at its
/// next look, long before its deadline.
#[tokio::test]
async fn a_leader_that_finds_another_holder_exits_at_its_next_look() {
    let LeaseEnv {
        cp,
        ns,
        leases,
        // Kept to the end: the operator's connection points at it.
        emu: _emu,
        ..
    } = LeaseEnv::new("usurped", 5).await;
    let mut op = start(cp.kubeconfig(), &ns, IDS[0]);
    wait_logged(&op, "became leader", Duration::from_secs(30)).await;

    let usurped = Timestamp::now();
    let patch = serde_json::json!({"spec": {"holderIdentity": "intruder"}});
    leases
        .patch(
            LEASE,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
        .expect("patch the Lease");
    let status = wait_for(Duration::from_secs(10), || {
        let exited = op.exited();
        async move { exited }
    })
    .await
    .unwrap_or_else(|_| panic!("the usurped leader never exited:\n{}", op.logs()));
    assert!(!status.success());
    let lost = logged_at(&op, "lost the leader lease; exiting").expect("it says why");
    assert!(
        op.logs().contains("intruder holds the Lease"),
        "{}",
        op.logs()
    );
    // One renew interval (1 s) plus a round trip, not the 4 s of writes a
    // renewal allows.
    assert!(
        secs(usurped, lost) < 3.0,
        "exited {:.2}s after",
        secs(usurped, lost)
    );
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("intruder"),
        "left alone"
    );
    eprintln!(
        "fencing: usurped leader exited {:.2}s after",
        secs(usurped, lost)
    );
}
