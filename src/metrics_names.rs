//! The operator's own metric names, all under [`PREFIX`], registered in
//! one place so the naming scheme is visible at a glance.

use prometheus_client::metrics::{family::Family, gauge::Gauge};

use super::{Metrics, PREFIX};

/// The git revision the binary was built from, when the build said so
/// (`SALES_ORDER_OPERATOR_REVISION=$(git rev-parse HEAD) cargo build`;
/// the Dockerfile passes its `REVISION` build argument).
const REVISION: Option<&str> = option_env!("SALES_ORDER_OPERATOR_REVISION");

impl Metrics {
    /// The operator's own metrics, all under [`PREFIX`].
    pub(super) fn register_own(&mut self) {
        let r = self.registry.sub_registry_with_prefix(PREFIX);
        r.register(
            "d365_requests",
            "D365 HTTP requests by method, kind and status code",
            self.requests.clone(),
        );
        r.register(
            "d365_request_duration_seconds",
            "D365 HTTP request duration",
            self.request_time.clone(),
        );
        r.register(
            "d365_batch_operations",
            "Operations inside D365 $batch answers by method and status code (unanswered: no part)",
            self.batch_operations.clone(),
        );
        r.register(
            "d365_conflicts",
            "D365 answers 409/412 (stale ETag), single requests and $batch operations",
            self.conflicts.clone(),
        );
        r.register(
            "d365_throttles",
            "D365 answers 429, single requests and $batch operations",
            self.throttles.clone(),
        );
        r.register(
            "reconcile_outcomes",
            "Reconcile outcomes by condition reason",
            self.outcomes.clone(),
        );
        r.register(
            "objects",
            "SalesOrderStatus objects by their namespace, connection and Ready reason",
            self.objects.clone(),
        );
        r.register(
            "status_writes",
            "Status subresource patches",
            self.status_writes.clone(),
        );
        r.register(
            "connection_requeues",
            "Reconciles requeued before any request because their connection was paused or busy",
            self.connection_requeues.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the lease named by the label",
            self.leader.clone(),
        );
        r.register(
            "shards",
            "Shards the orders are split into (--shard-count), each with its own lease",
            self.shards.clone(),
        );
        r.register(
            "build_info",
            "Always 1; the labels say which build runs",
            build_info(),
        );
    }
}

/// `build_info`: version from Cargo.toml, revision when the build was
/// given one; nothing guessed at run time.
fn build_info() -> Family<Vec<(&'static str, String)>, Gauge> {
    let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
    let mut labels = vec![("version", env!("CARGO_PKG_VERSION").to_owned())];
    if let Some(revision) = REVISION.filter(|r| !r.is_empty()) {
        labels.push(("revision", revision.to_owned()));
    }
    info.get_or_create(&labels).set(1);
    info
}
