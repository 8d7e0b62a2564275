//! What one run measured, as printed and written to JSON.

use serde::Serialize;

use super::d365count::D365Requests;
use super::modes::Mode;

/// One run: N orders, a conflict rate, a mode.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub orders: usize,
    pub conflicts: f64,
    pub mode: Mode,
    /// The connection's effective limits (after the CRD's defaults).
    pub connection: Effective,
    /// Seconds from the operator's start to 50/90/99/100 % Ready; `None`:
    /// not reached before the run's deadline.
    pub ready_seconds: [Option<f64>; 4],
    /// (seconds since start, Ready fraction), every ~250 ms.
    pub timeline: Vec<(f64, f64)>,
    pub bounds: Bounds,
    pub d365: D365Requests,
    /// Kubernetes writes by the operator.
    pub status_writes: f64,
    pub events: u64,
    pub d365_conflicts: f64,
    /// D365 requests the operator counted (entity + batch kinds), to check
    /// against the emulator's journal.
    pub operator_d365_requests: f64,
    /// Reconciles the operator ran.
    pub reconciles: f64,
    /// Highest RSS of the run (VmHWM): during the mass update, with every
    /// reconcile's buffers in flight.
    pub peak_rss_mib: Option<f64>,
    /// RSS once every order is Ready and the run is quiet: what holding N
    /// objects costs (issue 12's "RSS at 10,000 objects").
    pub rest_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
    /// etcd + kube-apiserver CPU per order from the operator's start to
    /// 100 % Ready, in ms (its start-up list and watch included).
    pub control_plane_ms: Option<f64>,
    /// Another run's figures would not be comparable: the operator exited.
    pub operator_exited: Option<String>,
}

/// The D365Connection as the operator reads it.
#[derive(Clone, Debug, Serialize)]
pub struct Effective {
    pub max_requests_per_second: u32,
    pub max_concurrent_requests: u32,
    pub adaptive_concurrency: bool,
    pub batch_max_operations: Option<u32>,
    pub max_concurrent_reconciles: u16,
}

/// Lower bounds on the time to 100 % Ready, in seconds.
#[derive(Clone, Debug, Serialize)]
pub struct Bounds {
    /// D365 requests actually made / `maxRequestsPerSecond`.
    pub budget: f64,
    /// Requests actually made × latency / concurrency (2·N·L/C when each
    /// order costs a GET and a PATCH); for the adaptive mode the capacity
    /// model's concurrency.
    pub latency: f64,
    /// A plain client's N status writes (the operator's status for an
    /// updated order) + N Events at the reconciles' concurrency, measured
    /// in this bench run.
    pub api_server: f64,
    /// The same with a one-condition status: the bound earlier runs used,
    /// printed for comparison, never binding.
    pub api_server_minimal: f64,
    /// etcd + kube-apiserver CPU per order of the `api_server` pass, in
    /// ms: set against `RunResult::control_plane_ms`, the operator's cost
    /// to the API server beyond its writes, whatever the machine's speed.
    pub api_control_plane_ms: Option<f64>,
    /// With conflicts: the conflict backoff schedule's simulated time for
    /// every order to be written (`reconcile::simulate`, the operator's
    /// default `--conflict-backoff-cap`, mean of several draws), D365 and
    /// the API server taken as instant. 0 without conflicts.
    pub conflict_schedule: f64,
}

impl Bounds {
    /// The largest bound and its name.
    pub fn binding(&self) -> (&'static str, f64) {
        [
            ("budget", self.budget),
            ("latency", self.latency),
            ("api", self.api_server),
            ("backoff", self.conflict_schedule),
        ]
        .into_iter()
        .fold(("none", 0.0), |a, b| if b.1 > a.1 { b } else { a })
    }
}

impl RunResult {
    /// Time to 100 % over the binding bound.
    pub fn ratio(&self) -> Option<f64> {
        let (_, bound) = self.bounds.binding();
        Some(self.ready_seconds[3]? / bound).filter(|_| bound > 0.0)
    }

    pub fn per_order(&self, count: f64) -> f64 {
        count / self.orders.max(1) as f64
    }

    /// Operator CPU per order, in milliseconds.
    pub fn cpu_ms_per_order(&self) -> Option<f64> {
        Some(self.cpu_seconds? * 1e3 / self.orders.max(1) as f64)
    }
}
