//! State shared by every reconcile: clients, the order cache, per-object
//! failure counts (kube-runtime has no per-object backoff of its own) and
//! metrics.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::MANAGER;
use super::by_connection::ByConnection;
use super::connection_status::Checks;
use super::connections::Connections;
use super::owners::Feed;
use super::recorder::Recorder;
use crate::api::{Reason, SalesOrderStatus};
use crate::locks::lock;
use crate::maps::shrink_when_sparse;
use crate::metrics::Metrics;
use crate::reconcile::{Backoff, FailureKind, Failures};

/// Tunables from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Re-read in-sync orders this often to detect drift.
    pub resync_interval: Duration,
    /// Re-check Stalled orders this often even without a spec change.
    pub stalled_recheck: Duration,
    /// Conflicts and errors, each on its own schedule.
    pub backoff: Backoff,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(1800),
            backoff: Backoff::default(),
        }
    }
}

/// Shared by every reconcile of every order.
pub struct Context {
    /// Writes statuses (orders and connections).
    pub client: kube::Client,
    pub settings: Settings,
    /// Every order this controller watches.
    pub orders: Store<SalesOrderStatus>,
    /// Who writes each D365 order, shared with the other controllers.
    pub owners: Feed,
    /// This controller's orders by connection, for requeues and checks.
    pub by_connection: ByConnection,
    /// D365 clients by connection, with the connection and Secret caches.
    pub d365: Connections,
    pub checks: Checks,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    failures: Mutex<HashMap<ObjectRef<SalesOrderStatus>, Failures>>,
    /// The namespace this controller watches (all when `None`): it prunes
    /// the per-object metrics there and not another controller's.
    pub scope: Option<String>,
    /// Turns true once the connection and Secret caches have listed
    /// everything: before that a missing connection or Secret may only be
    /// not listed yet, and reporting it would be false.
    synced: watch::Receiver<bool>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        (orders, owners): (Store<SalesOrderStatus>, Feed),
        d365: Connections,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        synced: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client,
            settings,
            orders,
            owners,
            by_connection: ByConnection::default(),
            d365,
            checks: Checks::default(),
            recorder,
            metrics,
            failures: Mutex::new(HashMap::new()),
            scope: None,
            synced,
        }
    }

    /// True once connections and Secrets are cached.
    pub fn caches_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until connections and Secrets are cached. Many reconciles may
    /// wait here at once: a watch channel wakes them all, unlike a store's
    /// readiness signal (see `controller::run`).
    pub async fn wait_for_caches(&self) {
        let mut synced = self.synced.clone();
        // An error means the sender is gone: the controller is stopping.
        let _ = synced.wait_for(|ready| *ready).await;
    }

    /// Failures since the last success.
    pub fn failures(&self, order: &ObjectRef<SalesOrderStatus>) -> u32 {
        lock(&self.failures).get(order).map_or(0, |f| f.total)
    }

    /// Counts one more failure of `kind`; returns the new counts.
    pub fn record_failure(
        &self,
        order: &ObjectRef<SalesOrderStatus>,
        kind: FailureKind,
    ) -> Failures {
        let mut map = lock(&self.failures);
        let f = map.entry(bare(order)).or_default();
        *f = f.and(kind);
        *f
    }

    /// Success (or deletion) resets the backoff. A map that held many
    /// failing orders (an outage) gives its room back once they recover:
    /// a hash map never shrinks on its own.
    pub fn forget_failures(&self, order: &ObjectRef<SalesOrderStatus>) {
        let mut map = lock(&self.failures);
        if map.remove(order).is_some() {
            shrink_when_sparse(&mut map);
        }
    }

    /// Records an object's outcome in the per-object metrics, labelled by
    /// its namespace and connection.
    pub fn report(&self, order: &ObjectRef<SalesOrderStatus>, connection: &str, reason: Reason) {
        let namespace = order.namespace.as_deref().unwrap_or_default();
        self.metrics
            .outcome(namespace, &order.name, connection, reason);
    }

    /// Drops what is kept per object: its failure count and metrics.
    pub fn forget(&self, order: &ObjectRef<SalesOrderStatus>) {
        self.forget_failures(order);
        let namespace = order.namespace.as_deref().unwrap_or_default();
        self.metrics.forget_object(namespace, &order.name);
    }

    /// Forgets every object the order store no longer holds: a Delete
    /// missed in a watch gap, or a reconcile that ended after its object's
    /// Delete and recorded it again.
    pub fn prune(&self) {
        let live = |o: &ObjectRef<SalesOrderStatus>| self.orders.get(o).is_some();
        let failed: Vec<_> = lock(&self.failures).keys().cloned().collect();
        let reported = self.metrics.objects_in(self.scope.as_deref());
        let reported = reported
            .iter()
            .map(|(namespace, name)| ObjectRef::new(name).within(namespace));
        for gone in failed.into_iter().chain(reported).filter(|o| !live(o)) {
            self.forget(&gone);
        }
    }

    /// Delay before the next attempt after `failures`, the last of `kind`.
    pub fn backoff(&self, failures: Failures, kind: FailureKind) -> Duration {
        self.settings
            .backoff
            .delay(failures, kind, rand::random::<f64>())
    }
}

/// `order` without its uid and resource version: equal and hashed the
/// same (kube ignores them there), and two strings fewer per kept order.
fn bare(order: &ObjectRef<SalesOrderStatus>) -> ObjectRef<SalesOrderStatus> {
    let mut bare = order.clone();
    bare.extra = Default::default();
    bare
}

/// Parameters of every status patch, under the operator's field manager
/// (not server-side apply, which `apply` implies).
pub fn status_patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The status write: a JSON Patch that replaces the whole status. A merge
/// patch keeps every field the new status leaves out (a delivery date D365
/// cleared, a resend count back to 0), so the status would show it forever
/// and every later reconcile, finding it there, would write again.
pub fn status_replacement(status: &impl Serialize) -> Result<Patch<()>, kube::Error> {
    let value = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    let ops = serde_json::json!([{"op": "add", "path": "/status", "value": value}]);
    serde_json::from_value(ops)
        .map(Patch::Json)
        .map_err(kube::Error::SerdeError)
}

/// Writes `status` as the whole status of `name` (see
/// [`status_replacement`]), under the operator's field manager.
pub async fn replace_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl Serialize,
) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let patch = status_replacement(status)?;
    api.patch_status(name, &status_patch_params(), &patch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_reference_drops_uid_and_version_and_still_finds_the_order() {
        let mut order = SalesOrderStatus::test(1);
        order.metadata.namespace = Some("a".into());
        order.metadata.uid = Some("uid-1".into());
        order.metadata.resource_version = Some("42".into());
        let full = ObjectRef::from_obj(&order);
        assert_eq!(full.extra.uid.as_deref(), Some("uid-1"));
        let kept = bare(&full);
        assert_eq!((kept.extra.uid, kept.extra.resource_version), (None, None));
        let set = std::collections::HashSet::from([bare(&full)]);
        assert!(set.contains(&full));
    }

    #[test]
    fn the_status_write_replaces_the_whole_status() {
        use crate::api::{ObservedOrder, SalesOrderStatusStatus};
        let status = SalesOrderStatusStatus {
            observed: Some(ObservedOrder {
                sales_status: Some("Delivered".into()),
                delivery_date: None,
                etag: Some("W/\"2\"".into()),
            }),
            ..Default::default()
        };
        let Ok(Patch::Json(patch)) = status_replacement(&status) else {
            panic!("a JSON Patch");
        };
        let ops = serde_json::to_value(&patch).unwrap_or_default();
        assert_eq!(
            ops,
            serde_json::json!([{"op": "add", "path": "/status", "value": {
                "observed": {"salesStatus": "Delivered", "etag": "W/\"2\""},
                "conflicts": 0,
                "conditions": [],
            }}]),
            "one add of /status: every field it leaves out is gone after it"
        );
    }
}
