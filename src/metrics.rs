//! Prometheus metrics, controller-runtime names where they exist.

use std::collections::HashMap;
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
    objects: Family<ReasonLabels, Gauge>,
    status_writes: Counter,
    connection_requeues: Family<CauseLabels, Counter>,
    leader: Gauge,
    by_object: Mutex<HashMap<String, Reason>>,
}

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
            leader: Gauge::default(),
            by_object: Mutex::new(HashMap::new()),
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
        r.register(
            "d365_requests",
            "D365 HTTP requests by method, kind and status code",
            m.requests.clone(),
        );
        r.register(
            "d365_request_duration_seconds",
            "D365 HTTP request duration",
            m.request_time.clone(),
        );
        r.register(
            "d365_batch_operations",
            "Operations inside D365 $batch answers by method and status code (unanswered: no part)",
            m.batch_operations.clone(),
        );
        r.register(
            "d365_conflicts",
            "D365 answers 409/412 (stale ETag), single requests and $batch operations",
            m.conflicts.clone(),
        );
        r.register(
            "d365_throttles",
            "D365 answers 429, single requests and $batch operations",
            m.throttles.clone(),
        );
        r.register(
            "sales_order_reconcile_outcomes",
            "Reconcile outcomes by condition reason",
            m.outcomes.clone(),
        );
        r.register(
            "sales_order_objects",
            "SalesOrderStatus objects by Ready reason",
            m.objects.clone(),
        );
        r.register(
            "sales_order_status_writes",
            "Status subresource patches",
            m.status_writes.clone(),
        );
        r.register(
            "sales_order_connection_requeues",
            "Reconciles requeued before any request because their connection was paused or busy",
            m.connection_requeues.clone(),
        );
        r.register(
            "sales_order_operator_leader",
            "1 while this replica holds the lease",
            m.leader.clone(),
        );
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

    /// Records an object's outcome; the by-reason gauge follows.
    pub fn outcome(&self, object: &str, reason: Reason) {
        self.outcomes
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
        let previous = lock(&self.by_object).insert(object.to_owned(), reason);
        self.move_object(previous, Some(reason));
    }

    pub fn forget_object(&self, object: &str) {
        let previous = lock(&self.by_object).remove(object);
        self.move_object(previous, None);
    }

    fn move_object(&self, from: Option<Reason>, to: Option<Reason>) {
        if from == to {
            return;
        }
        if let Some(r) = from {
            self.objects
                .get_or_create(&ReasonLabels { reason: r.as_str() })
                .dec();
        }
        if let Some(r) = to {
            self.objects
                .get_or_create(&ReasonLabels { reason: r.as_str() })
                .inc();
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

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
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

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
