//! One run: a fresh namespace and emulator, N changed orders, the operator
//! started over them, Ready sampled from its /metrics until all are Ready
//! (or the deadline), then the figures.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures;
use sales_order_operator::reconcile::simulate::simulate;
use sales_order_operator::reconcile::{BackoffPolicy, DEFAULT_CONFLICT_CAP};
use serde_json::json;

use super::apibound::{ApiBound, control_plane_cpu, per_order_ms};
use super::d365count::D365Requests;
use super::metrics;
use super::modes::{CAPACITY, LATENCY_MS, Mode};
use super::result::{Bounds, Effective, RunResult};
use crate::procfs;
use crate::support::{self, Operator};

/// Draws of the conflict schedule's simulation averaged for its bound.
const SEEDS: u64 = 10;

/// Every ~250 ms: cheap for the operator, fine enough for the percentiles.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

pub struct Plan {
    pub orders: usize,
    pub conflicts: f64,
    pub mode: Mode,
}

impl Plan {
    /// Generous: three times what D365's budget alone would take at two
    /// requests per order, twice the conflict schedule, plus time for the
    /// API server.
    fn deadline(&self, rps: u32) -> Duration {
        let budget = 2.0 * self.orders as f64 / f64::from(rps.max(1));
        let backoff = self.conflict_schedule();
        Duration::from_secs_f64(120.0 + 3.0 * budget + 2.0 * backoff + 0.02 * self.orders as f64)
    }

    /// The conflict schedule's simulated time for all orders, the mean of
    /// [`SEEDS`] draws (the worst of them, the e2e test's bound, is
    /// loose); 0 without conflicts.
    fn conflict_schedule(&self) -> f64 {
        if self.conflicts <= 0.0 {
            return 0.0;
        }
        let policy = BackoffPolicy::conflicts(DEFAULT_CONFLICT_CAP);
        let total: f64 = (0..SEEDS)
            .map(|seed| {
                simulate(&policy, self.orders, self.conflicts, seed)
                    .all
                    .as_secs_f64()
            })
            .sum();
        total / SEEDS as f64
    }
}

/// Creates the connection from the mode's fields alone, so the API
/// server's (and the operator's) defaults fill in the rest; returns it as
/// the operator reads it.
async fn create_connection(client: &Client, ns: &str, url: &str, mode: Mode) -> D365Connection {
    let mut spec = json!({
        "url": url,
        "auth": {
            "tenantId": d365_emulator::DEFAULT_TENANT,
            "clientId": d365_emulator::DEFAULT_CLIENT_ID,
            "clientSecretRef": {"name": fixtures::SECRET, "key": fixtures::SECRET_KEY},
            "authorityUrl": url,
        },
    });
    if let (Some(spec), Some(fields)) = (spec.as_object_mut(), mode.spec_fields().as_object()) {
        spec.extend(fields.clone());
    }
    let ar = ApiResource::erase::<D365Connection>(&());
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": ar.api_version,
        "kind": ar.kind,
        "metadata": {"name": fixtures::CONNECTION},
        "spec": spec,
    }))
    .expect("a connection object");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let created = api
        .create(&PostParams::default(), &object)
        .await
        .expect("create connection");
    serde_json::from_value(serde_json::to_value(created).expect("JSON"))
        .expect("a D365Connection as the operator reads it")
}

fn effective(conn: &D365Connection, mode: Mode) -> Effective {
    Effective {
        max_requests_per_second: conn.spec.max_requests_per_second,
        max_concurrent_requests: conn.spec.max_concurrent_requests,
        adaptive_concurrency: conn.spec.adaptive_concurrency,
        batch_max_operations: conn.spec.batch.as_ref().map(|b| b.max_operations),
        max_concurrent_reconciles: mode.reconciles(),
    }
}

/// Ready fraction over time until all `n` are Ready, the operator exits,
/// or `deadline` passes.
async fn sample(op: &mut Operator, n: usize, deadline: Duration) -> Vec<(f64, f64)> {
    let started = Instant::now();
    let mut timeline = vec![(0.0, 0.0)];
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < deadline {
        tick.tick().await;
        let ready = metrics::ready(&op.metrics().await);
        let t = started.elapsed().as_secs_f64();
        timeline.push((t, ready / n as f64));
        if ready as usize >= n || op.exited().is_some() {
            break;
        }
    }
    timeline
}

/// First time the Ready fraction reached each of 50/90/99/100 %.
fn percentiles(timeline: &[(f64, f64)], n: usize) -> [Option<f64>; 4] {
    [0.5, 0.9, 0.99, 1.0].map(|p| {
        let needed = (p * n as f64).ceil() / n as f64;
        timeline
            .iter()
            .find(|(_, f)| *f >= needed - 1e-9)
            .map(|(t, _)| *t)
    })
}

/// Event writes about orders in `ns` (a series counts each occurrence),
/// listed in pages: 100,000 Events at once would be a large answer.
async fn order_events(client: &Client, ns: &str) -> u64 {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut params = ListParams::default().limit(5_000);
    let mut count = 0;
    loop {
        let page = api.list(&params).await.expect("list events");
        count += page
            .items
            .iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("SalesOrderStatus")
            })
            .map(|e| e.series.as_ref().map_or(1, |s| s.count.max(1) as u64))
            .sum::<u64>();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return count,
        }
    }
}

/// The Event count once it stops growing (the recorder sends Events after
/// the status write, so the last ones may still be on their way), read
/// every 500 ms for at most 15 s.
async fn settled_events(client: &Client, ns: &str) -> u64 {
    let last = std::cell::Cell::new(order_events(client, ns).await);
    let settled = testkit::wait_for(Duration::from_secs(15), || async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = order_events(client, ns).await;
        (last.replace(now) == now).then_some(now)
    })
    .await;
    settled.unwrap_or(last.get())
}

/// The shared control plane with the CRDs applied (the first call starts it).
pub async fn plane() -> &'static testkit::ControlPlane {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    cp
}

/// Runs `plan`; `api_bound` gives the API server's bound for N orders at a
/// concurrency (measured once per pair).
pub async fn run(plan: &Plan, api_server_bound: ApiBound) -> RunResult {
    let cp = plane().await;
    let client = cp.client();
    let (n, mode) = (plan.orders, plan.mode);
    let ns = cp.namespace(&format!("bench-{}-{n}", mode.name())).await;
    let emu = support::emulator(n, mode.faults(plan.conflicts)).await;
    support::put_secret(&client, &ns).await;
    let conn = create_connection(&client, &ns, &emu.url(), mode).await;
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), &ns);
    support::create_orders_concurrently(&orders, (1..=n).map(SalesOrderStatus::test), 32).await;

    let cpu = control_plane_cpu(cp);
    let mut op = start_operator(cp.kubeconfig(), &ns, mode);
    let timeline = sample(&mut op, n, plan.deadline(conn.spec.max_requests_per_second)).await;
    let control_plane_ms = per_order_ms(cpu, control_plane_cpu(cp), n);
    let text = op.metrics().await;
    let pid = op.pid();
    let rest_rss_mib = procfs::rss_at_rest(pid).await;
    let (rss, cpu) = (
        procfs::status_kib(pid, "VmHWM:").map(|k| k as f64 / 1024.0),
        procfs::cpu_time(pid).map(|t| t.as_secs_f64()),
    );
    let operator_exited = op
        .exited()
        .map(|s| format!("{s}; its log: {}", op.log.display()));
    drop(op);
    let d365 = D365Requests::of(&emu);
    let effective = effective(&conn, mode);
    let result = RunResult {
        orders: n,
        conflicts: plan.conflicts,
        mode,
        bounds: bounds(plan, &d365, &effective, api_server_bound),
        connection: effective,
        ready_seconds: percentiles(&timeline, n),
        timeline,
        d365,
        status_writes: metrics::sum(&text, metrics::STATUS_WRITES, &[]),
        events: settled_events(&client, &ns).await,
        d365_conflicts: metrics::sum(&text, metrics::CONFLICTS, &[]),
        operator_d365_requests: ["entity", "batch"]
            .iter()
            .map(|k| metrics::sum(&text, metrics::D365_REQUESTS, &[("kind", k)]))
            .sum(),
        reconciles: metrics::sum(&text, metrics::RECONCILES, &[]),
        peak_rss_mib: rss,
        rest_rss_mib,
        cpu_seconds: cpu,
        control_plane_ms,
        operator_exited,
    };
    // The next run's API server need not hold this one.
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &Default::default())
        .await;
    emu.shutdown().await;
    result
}

fn start_operator(kubeconfig: &Path, ns: &str, mode: Mode) -> Operator {
    let reconciles = mode.reconciles().to_string();
    // No resync inside a run: its reads would count as the run's requests.
    let extra = [
        "--resync-interval",
        "24h",
        "--max-concurrent-reconciles",
        &reconciles,
    ];
    // The shipped release build (`make bench` passes it), else the bench's.
    let bin = support::operator_bin();
    Operator::start_logging(&bin, kubeconfig, ns, &extra, "info")
}

fn bounds(plan: &Plan, d365: &D365Requests, conn: &Effective, api_server: ApiBound) -> Bounds {
    let requests = d365.total() as f64;
    let concurrency = match plan.mode {
        Mode::Adaptive => CAPACITY,
        _ => conn.max_concurrent_requests,
    };
    Bounds {
        budget: requests / f64::from(conn.max_requests_per_second.max(1)),
        latency: requests * LATENCY_MS as f64 / 1e3 / f64::from(concurrency.max(1)),
        api_server: api_server.operator_status,
        api_server_minimal: api_server.minimal,
        api_control_plane_ms: api_server.control_plane_ms,
        conflict_schedule: plan.conflict_schedule(),
    }
}
