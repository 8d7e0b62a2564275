//! Leader election with two (then three) operator processes on one control
//! plane and one emulator: exactly one writes to D365; when the leader is
//! SIGKILLed a standby takes the Lease within the lease duration (plus one
//! look) and converges new orders; a SIGTERMed leader releases the Lease on
//! its way out and a standby takes it at its next look. Fencing (a leader
//! cut off from the API server) is in fencing.rs. Run with `--nocapture`
//! to see the measured failover times.

use std::path::Path;
use std::time::Duration;

use crate::support::{Operator, connect, create_orders, wait_all};
use d365_emulator::{Emulator, Faults, WriteSource};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sales_order_operator::api::SalesOrderStatus;

pub const LEASE: &str = "sales-order-operator";
const LEASE_SECONDS: u64 = 4;
/// Lease duration plus the standby's polling (one renew interval) and a
/// margin for a loaded 2-core CI machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(LEASE_SECONDS + 6);

fn start(kubeconfig: &Path, ns: &str, identity: &str) -> Operator {
    start_watching(kubeconfig, ns, ns, identity)
}

fn start_watching(kubeconfig: &Path, watch: &str, lease_ns: &str, identity: &str) -> Operator {
    // Writes stop 3 s after a renewal; one renewal may fail.
    let timing = LeaseTiming {
        seconds: LEASE_SECONDS,
        margin: "1s",
    };
    start_replica(kubeconfig, (watch, lease_ns), identity, timing, &[])
}

/// A lease duration and fence margin for a test's replicas.
pub struct LeaseTiming<'a> {
    pub seconds: u64,
    pub margin: &'a str,
}

/// A leader-electing replica named `identity`, watching `watch` and
/// competing for the Lease in `lease_ns`, renewing every second, with
/// `extra` flags.
pub fn start_replica(
    kubeconfig: &Path,
    (watch, lease_ns): (&str, &str),
    identity: &str,
    timing: LeaseTiming<'_>,
    extra: &[&str],
) -> Operator {
    let seconds = timing.seconds.to_string();
    let mut args = vec![
        "--leader-elect",
        "--lease-namespace",
        lease_ns,
        "--lease-name",
        LEASE,
        "--lease-duration-seconds",
        &seconds,
        "--lease-renew-interval",
        "1s",
        "--lease-fence-margin",
        timing.margin,
        "--identity",
        identity,
    ];
    args.extend_from_slice(extra);
    // The test build, or SCALE_OPERATOR_BIN's for the heavy runs.
    Operator::start_bin(&crate::support::operator_bin(), kubeconfig, watch, &args)
}

/// When the operator logged `message` (its own clock, RFC 3339), if it did.
pub fn logged_at(op: &Operator, message: &str) -> Option<Timestamp> {
    op.logs().lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == message).then(|| v["timestamp"].as_str()?.parse().ok())?
    })
}

pub async fn wait_logged(op: &Operator, message: &str, timeout: Duration) -> Timestamp {
    testkit::wait_for(timeout, || async { logged_at(op, message) })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "operator never logged {message:?} within {timeout:?}:\n{}",
                op.logs()
            )
        })
}

fn accepted_writes(emu: &Emulator) -> usize {
    emu.history()
        .iter()
        .filter(|w| w.source == WriteSource::Client && w.accepted)
        .count()
}

async fn patches(op: &Operator) -> f64 {
    op.metric_sum(r#"sales_order_operator_d365_requests_total{method="PATCH""#)
        .await
}

pub async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get(LEASE).await.ok()?.spec?.holder_identity
}

/// A namespace with the CRDs, an emulator holding `orders` orders, its
/// connection, and the namespace's Leases: where replicas compete.
pub struct LeaseEnv {
    pub cp: &'static testkit::ControlPlane,
    pub ns: String,
    pub client: kube::Client,
    pub emu: Emulator,
    pub leases: Api<Lease>,
}

impl LeaseEnv {
    pub async fn new(prefix: &str, orders: usize) -> LeaseEnv {
        let cp = testkit::control_plane().await;
        cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
            .await;
        let ns = cp.namespace(prefix).await;
        let client = cp.client();
        let emu = crate::support::emulator(orders, Faults::default()).await;
        connect(&client, &ns, &emu).await;
        let leases = Api::namespaced(client.clone(), &ns);
        LeaseEnv {
            cp,
            ns,
            client,
            emu,
            leases,
        }
    }
}

pub fn secs(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0
}

#[tokio::test]
async fn one_writer_and_failover_within_the_lease_duration() {
    let LeaseEnv {
        cp,
        ns,
        client,
        emu,
        leases,
    } = LeaseEnv::new("leader", 30).await;

    // Two replicas at once; whichever wins, the other must stand by.
    let mut a = start(cp.kubeconfig(), &ns, "replica-a");
    let mut b = start(cp.kubeconfig(), &ns, "replica-b");
    for op in [&a, &b] {
        wait_logged(op, "waiting for leadership", Duration::from_secs(30)).await;
    }
    let winner = testkit::wait_for(Duration::from_secs(30), || async { holder(&leases).await })
        .await
        .expect("a Lease holder");
    let (leader, standby) = if winner == "replica-a" {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    wait_logged(leader, "became leader", Duration::from_secs(10)).await;

    create_orders(&client, &ns, (1..=10).map(SalesOrderStatus::test)).await;
    wait_all(
        &client,
        &ns,
        10,
        &["Updated", "InSync"],
        Duration::from_secs(60),
    )
    .await;

    // Exactly one writer: every accepted PATCH in the emulator's history is
    // one the leader counted; the standby made no D365 request at all.
    assert_eq!(accepted_writes(&emu), 10);
    assert_eq!(patches(leader).await, 10.0);
    assert_eq!(
        standby
            .metric_sum("sales_order_operator_d365_requests_total")
            .await,
        0.0,
        "standby talked to D365"
    );
    // One series per Lease on both: the standby's 0 is there, not absent
    // (the not-leading alert counts leases by it).
    let series = format!(r#"sales_order_operator_leader{{lease="{LEASE}"}} "#);
    assert!(standby.metrics().await.contains(&format!("{series}0")));
    assert!(leader.metrics().await.contains(&format!("{series}1")));
    assert!(
        logged_at(standby, "became leader").is_none() && !standby.logs().contains("order updated")
    );

    // SIGKILL the leader: no release, the Lease must expire.
    leader.kill();
    let killed = Timestamp::now();
    create_orders(&client, &ns, (11..=20).map(SalesOrderStatus::test)).await;
    let took_over = wait_logged(
        standby,
        "became leader",
        FAILOVER_BOUND + Duration::from_secs(10),
    )
    .await;
    let failover = secs(killed, took_over);
    wait_all(
        &client,
        &ns,
        20,
        &["Updated", "InSync"],
        Duration::from_secs(60),
    )
    .await;
    let converged = secs(killed, Timestamp::now());
    eprintln!(
        "leader election: SIGKILL failover {failover:.2}s (lease {LEASE_SECONDS}s), 10 new orders Ready {converged:.2}s after the kill"
    );
    assert!(
        failover <= FAILOVER_BOUND.as_secs_f64(),
        "failover took {failover:.2}s"
    );
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some(if winner == "replica-a" {
            "replica-b"
        } else {
            "replica-a"
        })
    );
    assert_eq!(accepted_writes(&emu), 20, "each new order written once");
    assert_eq!(
        patches(standby).await,
        10.0,
        "the new leader wrote the new orders"
    );

    // A third replica stands by; SIGTERM to the leader releases the Lease
    // (holder cleared) on the way out and a standby takes it.
    let mut c = start(cp.kubeconfig(), &ns, "replica-c");
    wait_logged(&c, "waiting for leadership", Duration::from_secs(30)).await;
    let terminated = Timestamp::now();
    let old = if winner == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    assert!(
        standby.terminate(),
        "graceful exit on SIGTERM:\n{}",
        standby.logs()
    );
    let after_exit = holder(&leases).await;
    assert!(
        after_exit.as_deref() != Some(old),
        "the terminated leader did not release the Lease"
    );
    let took_over = wait_logged(
        &c,
        "became leader",
        FAILOVER_BOUND + Duration::from_secs(10),
    )
    .await;
    let handover = secs(terminated, took_over);
    create_orders(&client, &ns, (21..=25).map(SalesOrderStatus::test)).await;
    wait_all(
        &client,
        &ns,
        25,
        &["Updated", "InSync"],
        Duration::from_secs(60),
    )
    .await;
    eprintln!("leader election: SIGTERM hand-over {handover:.2}s");
    assert!(
        handover <= FAILOVER_BOUND.as_secs_f64(),
        "hand-over took {handover:.2}s"
    );
    assert_eq!(accepted_writes(&emu), 25);
    assert_eq!(patches(&c).await, 5.0);
    c.kill();
}

/// A standby is healthy: `/readyz` must answer 200 while it waits, or a
/// Deployment rollout (the new pod starts as a standby) never completes.
#[tokio::test]
async fn a_standby_watching_several_namespaces_is_ready() {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let (a, b) = (
        cp.namespace("standby-a").await,
        cp.namespace("standby-b").await,
    );
    let leader = start(cp.kubeconfig(), &a, "holder");
    wait_logged(&leader, "became leader", Duration::from_secs(30)).await;
    for (watch, identity) in [
        (b.clone(), "standby-one-ns"),
        (format!("{a},{b}"), "standby-two-ns"),
    ] {
        let standby = start_watching(cp.kubeconfig(), &watch, &a, identity);
        wait_logged(&standby, "waiting for leadership", Duration::from_secs(30)).await;
        let url = format!("{}/readyz", standby.http);
        let ready = testkit::wait_for(Duration::from_secs(20), || async {
            reqwest::get(&url)
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(())
        })
        .await;
        assert!(
            ready.is_ok(),
            "standby watching {watch} never ready:\n{}",
            standby.logs()
        );
    }
}
