//! Prometheus metrics: the operator's own under `sales_order_operator_`,
//! controller-runtime's reconcile names where dashboards expect them, and
//! the standard `process_*` names.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;

use crate::api::Reason;
use crate::d365::{OperationEvent, RequestEvent, RequestObserver};
use crate::locks::lock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerOnly {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    kind: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    method: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// With shards every replica set holds its own Lease; the label tells
/// which, so "every lease has a leader" can be alerted on.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

/// Why a reconcile was requeued for its connection before any request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequeueCause {
    /// Paused after a 429: back when the pause ends.
    Paused,
    /// As many of its reconciles in D365 as it may take: back in a moment.
    Busy,
}

impl RequeueCause {
    fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Busy => "busy",
        }
    }
}

const CONTROLLER: &str = "salesorderstatus";

/// Every metric the operator exports; shared by reconciles and D365 clients.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    reconcile_errors: Family<ControllerOnly, Counter>,
    reconcile_time: Family<ControllerOnly, Histogram>,
    requests: Family<RequestLabels, Counter>,
    request_time: Family<MethodLabels, Histogram>,
    batch_operations: Family<OperationLabels, Counter>,
    conflicts: Counter,
    throttles: Counter,
    outcomes: Family<ReasonLabels, Counter>,
    objects: Family<ObjectLabels, Gauge>,
    status_writes: Counter,
    connection_requeues: Family<CauseLabels, Counter>,
    leader: Family<LeaseLabels, Gauge>,
    shards: Gauge,
    /// The objects series each order counts in.
    by_object: Mutex<ObjectIndex>,
}

/// Prefix of every metric of the operator's own.
pub const PREFIX: &str = "sales_order_operator";

impl Default for Metrics {
    fn default() -> Self {
        let seconds = || {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        };
        let mut m = Self {
            registry: Registry::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(seconds),
            requests: Family::default(),
            request_time: Family::new_with_constructor(seconds),
            batch_operations: Family::default(),
            conflicts: Counter::default(),
            throttles: Counter::default(),
            outcomes: Family::default(),
            objects: Family::default(),
            status_writes: Counter::default(),
            connection_requeues: Family::default(),
            leader: Family::default(),
            shards: Gauge::default(),
            by_object: Mutex::default(),
        };
        let r = &mut m.registry;
        r.register(
            "controller_runtime_reconcile",
            "Reconciles by result",
            m.reconciles.clone(),
        );
        r.register(
            "controller_runtime_reconcile_errors",
            "Reconciles that returned an error",
            m.reconcile_errors.clone(),
        );
        r.register(
            "controller_runtime_reconcile_time_seconds",
            "Reconcile duration",
            m.reconcile_time.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        m.register_own();
        m
    }
}

impl Metrics {
    /// OpenMetrics text for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Starts timing one reconcile; see [`ReconcileTimer`].
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
            result: "error",
        }
    }

    /// Counts one reconcile with its result and duration.
    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ControllerLabels {
                controller: CONTROLLER,
                result,
            })
            .inc();
        if result == "error" {
            self.reconcile_errors
                .get_or_create(&ControllerOnly {
                    controller: CONTROLLER,
                })
                .inc();
        }
        self.reconcile_time
            .get_or_create(&ControllerOnly {
                controller: CONTROLLER,
            })
            .observe(took.as_secs_f64());
    }

    /// Records an order's outcome; the objects gauge follows: the order
    /// counts in exactly one series, and a series no order counts in any
    /// more is removed (no stale zeros for deleted namespaces or
    /// connections).
    pub fn outcome(&self, namespace: &str, name: &str, connection: &str, reason: Reason) {
        self.outcomes
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
        // One lock around the move, so a series dropped at zero cannot
        // race another order's increment of it.
        let mut by_object = lock(&self.by_object);
        let (previous, labels) = by_object.set((namespace, name), connection, reason.as_str());
        self.move_object(previous, Some(labels));
    }

    /// An order is gone: it leaves the objects gauge.
    pub fn forget_object(&self, namespace: &str, name: &str) {
        let mut by_object = lock(&self.by_object);
        let previous = by_object.remove(namespace, name);
        self.move_object(previous, None);
    }

    /// (namespace, name) of the orders the objects gauge counts in
    /// `namespace` (every namespace when `None`): what a controller
    /// watching it has reported.
    pub fn objects_in(&self, namespace: Option<&str>) -> Vec<(String, String)> {
        lock(&self.by_object).names_in(namespace)
    }

    /// Called with `by_object` locked.
    fn move_object(&self, from: Option<ObjectLabels>, to: Option<ObjectLabels>) {
        if from == to {
            return;
        }
        if let Some(from) = from {
            let left = self.objects.get_or_create(&from).dec() - 1;
            if left <= 0 {
                self.objects.remove(&from);
            }
        }
        if let Some(to) = to {
            self.objects.get_or_create(&to).inc();
        }
    }

    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    pub fn connection_requeue(&self, cause: RequeueCause) {
        self.connection_requeues
            .get_or_create(&CauseLabels {
                cause: cause.as_str(),
            })
            .inc();
    }

    /// `--shard-count`: how many leases should each have a leader.
    pub fn set_shards(&self, count: u32) {
        self.shards.set(i64::from(count));
    }

    /// Whether this replica holds `lease` (the shard's Lease name).
    pub fn set_leader(&self, lease: &str, leader: bool) {
        self.leader
            .get_or_create(&LeaseLabels {
                lease: lease.to_owned(),
            })
            .set(i64::from(leader));
    }
}

/// Records one reconcile when dropped, so every way out of a reconcile
/// (early return, `?`, unwinding) is counted exactly once; the result is
/// "error" unless [`ReconcileTimer::succeeded`] or
/// [`ReconcileTimer::requeued`] was called.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    started: Instant,
    result: &'static str,
}

impl ReconcileTimer<'_> {
    pub fn succeeded(&mut self) {
        self.result = "success";
    }

    /// Ended early to come back later, neither done nor failed
    /// (controller-runtime's `requeue_after`).
    pub fn requeued(&mut self) {
        self.result = "requeue_after";
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconciled(self.result, self.started.elapsed());
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, e: &RequestEvent) {
        let code = e
            .status
            .map_or_else(|| "error".to_owned(), |s| s.to_string());
        let kind = e.kind.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                method: e.method,
                kind,
                code,
            })
            .inc();
        self.request_time
            .get_or_create(&MethodLabels {
                method: e.method,
                kind,
            })
            .observe(e.duration.as_secs_f64());
        self.count_refusal(e.status);
    }

    fn observe_operation(&self, e: &OperationEvent) {
        let code = e
            .status
            .map_or_else(|| "unanswered".to_owned(), |s| s.to_string());
        self.batch_operations
            .get_or_create(&OperationLabels {
                method: e.method,
                code,
            })
            .inc();
        self.count_refusal(e.status);
    }
}

impl Metrics {
    /// Conflicts and throttles, whether a request or a `$batch` operation
    /// was refused.
    fn count_refusal(&self, status: Option<u16>) {
        match status {
            Some(409 | 412) => {
                self.conflicts.inc();
            }
            Some(429) => {
                self.throttles.inc();
            }
            _ => {}
        }
    }
}

#[path = "metrics_objects.rs"]
mod objects;
use objects::{ObjectIndex, ObjectLabels};

#[path = "metrics_names.rs"]
mod names;
#[path = "metrics_process.rs"]
mod process;

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
