//! The chaos run (issue 9): two operator replicas with leader election on a
//! private control plane and one emulator, while the leader is SIGKILLed on
//! a schedule, one leader is cut off the API server for longer than the
//! lease, kube-apiserver is killed and restarted, D365 answers with
//! conflicts, 5xx and hangs and revokes its tokens, desired states change
//! and another user edits the orders all along. Then, faults cleared, every
//! order must converge, and the emulator's journal must show no write on a
//! stale ETag, no lost edit, and no write past a fencing deadline.
//!
//! The default is short enough for `make test`; `make chaos` runs the long
//! version through the `CHAOS_*` variables below and `--nocapture` shows
//! the table.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use d365_emulator::{Emulator, Faults};
use kube::Api;
use sales_order_operator::api::SalesOrderStatus;

use crate::chaos_cluster::Cluster;
use crate::chaos_invariants::{
    Row, Verdict, fence_row, lost_edits_row, render, requests_row, stale_etag_row,
    writes_per_desired_row,
};
use crate::chaos_schedule::{self, Story, Writer};
use crate::chaos_timeline::End;
use crate::support::{connect, emulator};

/// The run's settings, each from `CHAOS_<NAME>` when set.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub orders: usize,
    /// Length of the schedule (the chaos itself), seconds.
    pub seconds: u64,
    pub kills: usize,
    pub lease_seconds: u64,
    pub cut_seconds: u64,
    pub apiserver_down_seconds: u64,
    pub conflict_rate: f64,
    pub error_rate: f64,
    pub hang_rate: f64,
    pub hang_ms: u64,
    pub edits_per_second: f64,
    /// Every n-th order's desired state changes mid-run.
    pub change_every: usize,
    pub converge_seconds: u64,
    pub max_requests_per_order: f64,
    /// The operator's `--backoff-cap`: the run compresses time (a 4 s
    /// lease instead of 15 s), so the error back-off cap shrinks with it.
    pub backoff_cap_seconds: u64,
    /// The operator's `--resync-interval`, short so that a cut-off leader
    /// re-reads its orders (from its stale cache) while it is cut off.
    pub resync_seconds: u64,
}

fn knob<T: FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    let var = format!("CHAOS_{name}");
    match std::env::var(&var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{var}={v:?} is not valid: {e}")),
        Err(_) => default,
    }
}

impl Knobs {
    /// The short run by default (about a minute on 2 cores).
    pub fn from_env() -> Knobs {
        let lease_seconds = knob("LEASE_SECONDS", 4);
        let seconds = knob("SECONDS", 30);
        let resync_seconds = knob("RESYNC_SECONDS", 3u64).max(1);
        Knobs {
            orders: knob("ORDERS", 40),
            seconds,
            kills: knob("KILLS", 1),
            lease_seconds,
            cut_seconds: knob("CUT_SECONDS", lease_seconds * 2 + 2),
            apiserver_down_seconds: knob("APISERVER_DOWN_SECONDS", lease_seconds + 2),
            conflict_rate: knob("CONFLICT_RATE", 0.35),
            error_rate: knob("ERROR_RATE", 0.05),
            hang_rate: knob("HANG_RATE", 0.02),
            hang_ms: knob("HANG_MS", 6_000),
            edits_per_second: knob("EDITS_PER_SECOND", 15.0),
            change_every: knob("CHANGE_EVERY", 5),
            converge_seconds: knob("CONVERGE_SECONDS", 90),
            // Resync reads are expected; a retry storm is far above this.
            max_requests_per_order: knob(
                "MAX_REQUESTS_PER_ORDER",
                30.0 + 1.5 * seconds as f64 / resync_seconds as f64,
            ),
            backoff_cap_seconds: knob("BACKOFF_CAP_SECONDS", 15),
            resync_seconds,
        }
    }

    fn faults(&self) -> Faults {
        Faults {
            conflict_rate: self.conflict_rate,
            error_rate: self.error_rate,
            error_status: 503,
            hang_rate: self.hang_rate,
            hang_ms: self.hang_ms,
            ..Faults::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invariants_hold_through_kills_outages_and_faults() {
    let k = Knobs::from_env();
    let started = Instant::now();
    let cp = testkit::private_control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let ns = cp.namespace("chaos").await;
    let emu = emulator(k.orders, Faults::default()).await;
    connect(&cp.client(), &ns, &emu).await;
    let (cap, resync) = (
        format!("{}s", k.backoff_cap_seconds),
        format!("{}s", k.resync_seconds),
    );
    let args = ["--backoff-cap", &cap, "--resync-interval", &resync];
    let mut cluster = Cluster::start(cp, &ns, k.lease_seconds, &args).await;
    cluster.leader(Duration::from_secs(60)).await;

    emu.set_faults(k.faults());
    let created = Arc::new(AtomicUsize::new(0));
    let writer = Writer::spawn(emu.clone(), created.clone(), k.edits_per_second);
    let story = chaos_schedule::run(&mut cluster, &emu, &k, &created).await;
    emu.set_faults(Faults::default());
    let edits = writer.stop().await;

    let converged = converge(&mut cluster, &emu, &k).await;
    let rows = rows(&cluster, &emu, &k, &story, converged);
    let table = render(&rows);
    eprintln!(
        "\nchaos run: {} orders, {}s of chaos, lease {}s, resync {}s, {:.0}% conflicts, {:.0}% 503, {:.0}% hangs of {}ms, {edits} external edits; {:.0}s in all\n{}\n{}\n\n{table}",
        k.orders,
        k.seconds,
        k.lease_seconds,
        k.resync_seconds,
        k.conflict_rate * 100.0,
        k.error_rate * 100.0,
        k.hang_rate * 100.0,
        k.hang_ms,
        started.elapsed().as_secs_f64(),
        story.lines.join("\n"),
        processes(&cluster),
    );
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| r.invariant)
        .collect();
    assert!(
        failed.is_empty(),
        "chaos invariants failed (table above): {failed:?}; operator logs: {:?}",
        cluster.logs
    );
}

fn processes(cluster: &Cluster) -> String {
    let t = &cluster.timeline;
    format!(
        "operator processes: {} started, {} SIGKILLed, {} exited by themselves and were restarted",
        t.incarnations.len(),
        t.count(End::Killed),
        t.count(End::Exited)
    )
}

/// Where the orders ended: Ready at their generation, and D365 equal to
/// their spec.
#[derive(Debug)]
struct Convergence {
    total: usize,
    ready: usize,
    matching: usize,
    took: Duration,
    stragglers: Vec<String>,
}

async fn converge(cluster: &mut Cluster, emu: &Emulator, k: &Knobs) -> Convergence {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(k.converge_seconds);
    loop {
        let mut c = convergence(cluster, emu).await;
        c.took = since.elapsed();
        let done = c.total == k.orders && c.ready == c.total && c.matching == c.total;
        if done || Instant::now() >= deadline {
            return c;
        }
        cluster.pause(Duration::from_millis(500)).await;
    }
}

async fn convergence(cluster: &Cluster, emu: &Emulator) -> Convergence {
    let api: Api<SalesOrderStatus> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let orders = match api.list(&Default::default()).await {
        Ok(list) => list.items,
        Err(_) => Vec::new(), // e.g. the apiserver still settling: not yet
    };
    let mut c = Convergence {
        total: orders.len(),
        ready: 0,
        matching: 0,
        took: Duration::ZERO,
        stragglers: Vec::new(),
    };
    for o in &orders {
        let ready = o.ready_condition().is_some_and(|r| {
            r.status == "True"
                && ["Updated", "InSync"].contains(&r.reason.as_str())
                && r.observed_generation == o.metadata.generation
        });
        let matching = d365_matches(emu, o);
        c.ready += usize::from(ready);
        c.matching += usize::from(matching);
        if !(ready && matching) && c.stragglers.len() < 3 {
            c.stragglers.push(kube::ResourceExt::name_any(o));
        }
    }
    c
}

/// D365 holds the order's desired status and delivery date.
fn d365_matches(emu: &Emulator, o: &SalesOrderStatus) -> bool {
    let Some(entity) = emu.order(&o.spec.data_area_id, &o.spec.sales_order_number) else {
        return false;
    };
    let status = serde_json::to_value(o.spec.sales_status).unwrap_or_default();
    let date = entity["ConfirmedReceiptDate"].as_str().unwrap_or_default();
    entity["SalesOrderStatus"] == status
        && o.spec
            .delivery_date
            .as_deref()
            .is_none_or(|d| date.starts_with(d))
}

fn rows(cluster: &Cluster, emu: &Emulator, k: &Knobs, story: &Story, c: Convergence) -> Vec<Row> {
    let history = emu.history();
    let current = |area: &str, number: &str, field: &str| {
        emu.order(area, number)
            .map(|o| o[field].clone())
            .unwrap_or_default()
    };
    let mut converged = format!(
        "{}/{} Ready, {}/{} match D365, in {:.1}s",
        c.ready,
        k.orders,
        c.matching,
        k.orders,
        c.took.as_secs_f64()
    );
    if !c.stragglers.is_empty() {
        converged += &format!("; e.g. {}", c.stragglers.join(", "));
    }
    let all = c.total == k.orders && c.ready == k.orders && c.matching == k.orders;
    vec![
        Row::new("all orders converged", converged, all),
        stale_etag_row(&history),
        writes_per_desired_row(&history, k.orders + story.changed),
        lost_edits_row(&history, current),
        takeover_row(story, k),
        fence_row(&history, &cluster.timeline),
        requests_row(&emu.counters(), k.orders, k.max_requests_per_order),
    ]
}

/// The cut must hit a leader and a standby must take over, or the fence
/// row proves nothing about a partitioned leader.
fn takeover_row(story: &Story, k: &Knobs) -> Row {
    let bound = Duration::from_secs(k.cut_seconds);
    let (value, pass) = match &story.cut {
        Some((who, Some(after))) => (
            format!(
                "from {who} after {:.1}s (lease {}s, cut {}s)",
                after.as_secs_f64(),
                k.lease_seconds,
                k.cut_seconds
            ),
            *after <= bound,
        ),
        Some((who, None)) => (format!("nobody took over from {who} in {bound:?}"), false),
        None => ("no leader was cut".into(), false),
    };
    Row::new("standby took over from the cut leader", value, pass)
}
