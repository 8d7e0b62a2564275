//! The chaos schedule: what happens during the run, in order, with pauses
//! between steps (the pauses are the schedule itself, not waits for a
//! state), and the concurrent writer editing an unmanaged field of D365
//! orders all along.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use d365_emulator::Emulator;
use kube::Api;
use kube::api::{Patch, PatchParams};
use sales_order_operator::api::SalesOrderStatus;
use sales_order_operator::fixtures::order_number;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::chaos::Knobs;
use crate::chaos_cluster::Cluster;
use crate::support::create_orders;

/// The field the external writer edits: unmanaged (no spec field maps to
/// it), so the operator must never write it.
pub const EDITED_FIELD: &str = "CustomersOrderReference";
/// A new desired status and date for every n-th order.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Change(&'static str, &'static str);

/// Made while the leader is cut off: the standby applies it, and the cut
/// leader's cache still holds the old spec, so without fencing its resync
/// would write the old values back.
const IN_THE_CUT: Change = Change("Backorder", "2025-03-15");
/// The same orders change again later, with every replica connected.
const LATER: Change = Change("Delivered", "2025-04-01");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// Create orders up to this count.
    Wave(usize),
    RevokeTokens,
    KillLeader,
    /// Cut the leader off the API server; desired states change and a
    /// wave arrives meanwhile.
    CutLeader(usize),
    ChangeDesired(Change),
    RestartApiserver,
}

/// The steps in order: waves of orders, a leader cut off, desired changes,
/// a kube-apiserver restart, token revocations, and `kills` SIGKILLs of the
/// leader spread between them.
fn plan(orders: usize, kills: usize) -> Vec<Step> {
    let base = [
        Step::Wave(orders / 2),
        Step::RevokeTokens,
        Step::CutLeader(orders * 3 / 4),
        Step::ChangeDesired(LATER),
        Step::RestartApiserver,
        Step::Wave(orders),
        Step::RevokeTokens,
    ];
    let after = |j: usize| ((j as f64 + 0.5) * base.len() as f64 / kills as f64).round() as usize;
    let mut steps = Vec::new();
    for (i, step) in base.into_iter().enumerate() {
        steps.push(step);
        let here = (0..kills).filter(|&j| after(j).clamp(1, base.len()) - 1 == i);
        steps.extend(here.map(|_| Step::KillLeader));
    }
    steps
}

/// What the schedule did, for the report.
#[derive(Debug, Default)]
pub struct Story {
    pub lines: Vec<String>,
    pub kills: usize,
    pub revocations: usize,
    pub changed: usize,
    /// Identity of the cut leader and how long after the cut another
    /// replica held the Lease (None: nobody took over during the cut).
    pub cut: Option<(String, Option<Duration>)>,
    pub apiserver_down: Option<Duration>,
}

/// Runs the whole schedule; `created` follows the orders created so far.
pub async fn run(cluster: &mut Cluster, emu: &Emulator, k: &Knobs, created: &AtomicUsize) -> Story {
    let steps = plan(k.orders, k.kills);
    let busy = k.cut_seconds + k.apiserver_down_seconds;
    let gap = Duration::from_secs(k.seconds.saturating_sub(busy).max(steps.len() as u64))
        / steps.len() as u32;
    let start = Instant::now();
    let mut story = Story::default();
    for step in steps {
        let at = start.elapsed().as_secs_f64();
        let line = act(cluster, emu, k, created, step, &mut story).await;
        story.lines.push(format!("t+{at:>5.1}s {line}"));
        cluster.pause(gap).await;
    }
    story
}

async fn act(
    cluster: &mut Cluster,
    emu: &Emulator,
    k: &Knobs,
    created: &AtomicUsize,
    step: Step,
    story: &mut Story,
) -> String {
    let patience = Duration::from_secs(k.lease_seconds * 3 + 20);
    match step {
        Step::Wave(upto) => wave(cluster, created, upto).await,
        Step::RevokeTokens => {
            emu.revoke_tokens();
            story.revocations += 1;
            "revoked every D365 token".into()
        }
        Step::KillLeader => {
            let killed = cluster.kill_leader(patience).await;
            story.kills += 1;
            format!("SIGKILLed the leader {killed}, started its replacement")
        }
        Step::CutLeader(upto) => cut(cluster, k, created, upto, story).await,
        Step::ChangeDesired(to) => {
            change_desired(cluster, created, k.change_every, to, story).await
        }
        Step::RestartApiserver => {
            let down = Duration::from_secs(k.apiserver_down_seconds);
            let (leader, took) = cluster.restart_apiserver(down, patience).await;
            story.apiserver_down = Some(took);
            format!(
                "killed kube-apiserver under the leader {leader}; back after {:.1}s",
                took.as_secs_f64()
            )
        }
    }
}

async fn wave(cluster: &Cluster, created: &AtomicUsize, upto: usize) -> String {
    let from = created.load(Ordering::SeqCst) + 1;
    let orders = (from..=upto).map(SalesOrderStatus::test);
    create_orders(&cluster.client, &cluster.ns, orders).await;
    created.store(upto.max(from - 1), Ordering::SeqCst);
    format!("created orders {from}..={upto}")
}

/// Cuts the leader off for `cut_seconds` (longer than the lease), creates
/// a wave halfway through and notes when a standby took over.
async fn cut(
    cluster: &mut Cluster,
    k: &Knobs,
    created: &AtomicUsize,
    upto: usize,
    story: &mut Story,
) -> String {
    let patience = Duration::from_secs(k.lease_seconds * 3 + 20);
    let (slot, identity, from_ms) = cluster.cut_leader(patience).await;
    let cut_at = Instant::now();
    let end = cut_at + Duration::from_secs(k.cut_seconds);
    let seen = cluster.takeover(slot, end).await;
    let changed = change_desired(cluster, created, k.change_every, IN_THE_CUT, story).await;
    let created_line = wave(cluster, created, upto).await;
    cluster.pause_until(end).await;
    cluster.restore(slot, from_ms);
    let took_over = seen.map(|t| t - cut_at);
    story.cut = Some((identity.clone(), took_over));
    format!(
        "cut the leader {identity} off the API server for {}s (taken over after {}); meanwhile {changed}, {created_line}",
        k.cut_seconds,
        took_over.map_or("never".into(), |d| format!("{:.1}s", d.as_secs_f64()))
    )
}

/// Every `every`-th created order now wants another status and date.
async fn change_desired(
    cluster: &Cluster,
    created: &AtomicUsize,
    every: usize,
    Change(status, date): Change,
    story: &mut Story,
) -> String {
    let api: Api<SalesOrderStatus> = Api::namespaced(cluster.client.clone(), &cluster.ns);
    let patch = json!({"spec": {"salesStatus": status, "deliveryDate": date}});
    let upto = created.load(Ordering::SeqCst);
    let mut changed = 0;
    for i in (every..=upto).step_by(every.max(1)) {
        let name = order_number(i).to_ascii_lowercase();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("changing {name}: {e}"));
        changed += 1;
    }
    story.changed += changed;
    format!("changed {changed} orders to {status} on {date}")
}

/// Another D365 user editing [`EDITED_FIELD`] of created orders at a
/// steady rate, until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: JoinHandle<usize>,
}

impl Writer {
    pub fn spawn(emu: Emulator, created: Arc<AtomicUsize>, per_second: f64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            if per_second <= 0.0 {
                return 0;
            }
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut edits = 0;
            while !stopped.load(Ordering::SeqCst) {
                tick.tick().await;
                let n = created.load(Ordering::SeqCst);
                if n == 0 {
                    continue;
                }
                // Spread over the orders, not the same few again and again.
                let i = (edits * 7919) % n + 1;
                let fields = json!({EDITED_FIELD: format!("EXT-{edits:06}")});
                let serde_json::Value::Object(fields) = fields else {
                    unreachable!("an object literal")
                };
                emu.external_write("usmf", &order_number(i), fields)
                    .unwrap_or_else(|| panic!("external edit of order {i} refused"));
                edits += 1;
            }
            edits
        });
        Writer { stop, task }
    }

    /// Stops the writer; returns how many edits it made.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the writer task does not panic")
    }
}

#[test]
fn the_plan_spreads_the_kills_and_keeps_every_step() {
    let count = |steps: &[Step], s: Step| steps.iter().filter(|&&x| x == s).count();
    for kills in [0, 1, 3, 7] {
        let steps = plan(300, kills);
        assert_eq!(count(&steps, Step::KillLeader), kills, "{steps:?}");
        assert_eq!(steps.len(), 7 + kills);
        assert_eq!(steps[0], Step::Wave(150), "orders come first");
    }
    let steps = plan(300, 3);
    let kill_at: Vec<_> = (0..steps.len())
        .filter(|&i| steps[i] == Step::KillLeader)
        .collect();
    assert_eq!(kill_at, [1, 5, 8], "{steps:?}");
}
