//! State shared by every reconcile: clients, stores, per-object failure
//! counts (kube-runtime has no per-object backoff of its own) and metrics.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};

use super::connections::Connections;
use crate::api::{D365Connection, SalesOrderStatus};
use crate::metrics::Metrics;
use crate::reconcile::BackoffPolicy;

/// Tunables from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Re-read in-sync orders this often to detect drift.
    pub resync_interval: Duration,
    /// Re-check Stalled orders this often even without a spec change.
    pub stalled_recheck: Duration,
    pub backoff: BackoffPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(1800),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// A connection's (generation, Secret resourceVersion) when last checked.
pub type CheckedAs = (Option<i64>, Option<String>);

/// Shared by every reconcile of every order.
pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    pub orders: Store<SalesOrderStatus>,
    pub connections: Store<D365Connection>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub d365: Connections,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    failures: Mutex<HashMap<ObjectRef<SalesOrderStatus>, u32>>,
    /// Set once the connection and secret caches have listed everything:
    /// connection checks before that would report missing Secrets falsely.
    pub caches_ready: AtomicBool,
    /// Connection generations last seen, so status-only updates of a
    /// connection neither re-check it nor requeue its orders.
    pub checked_connections: Mutex<HashMap<(String, String), Option<i64>>>,
    /// (generation, Secret resourceVersion) of each connection's last check.
    pub checked: Mutex<HashMap<(String, String), CheckedAs>>,
    /// With a label selector, only connections of selected orders are checked.
    pub only_used_connections: bool,
}

impl Context {
    pub fn new(
        client: kube::Client,
        settings: Settings,
        stores: (
            Store<SalesOrderStatus>,
            Store<D365Connection>,
            Store<PartialObjectMeta<Secret>>,
        ),
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (orders, connections, secrets) = stores;
        Self {
            d365: Connections::new(metrics.clone()),
            client,
            settings,
            orders,
            connections,
            secrets,
            recorder,
            metrics,
            failures: Mutex::new(HashMap::new()),
            caches_ready: AtomicBool::new(false),
            checked_connections: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            only_used_connections: false,
        }
    }

    /// Failures since the last success.
    pub fn failures(&self, order: &ObjectRef<SalesOrderStatus>) -> u32 {
        self.failures
            .lock()
            .unwrap()
            .get(order)
            .copied()
            .unwrap_or(0)
    }

    /// Counts one more failure; returns the new count.
    pub fn record_failure(&self, order: &ObjectRef<SalesOrderStatus>) -> u32 {
        let mut map = self.failures.lock().unwrap();
        let n = map.entry(order.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Success (or deletion) resets the backoff.
    pub fn forget_failures(&self, order: &ObjectRef<SalesOrderStatus>) {
        self.failures.lock().unwrap().remove(order);
    }

    /// Delay before the next attempt after `failures` failures.
    pub fn backoff(&self, failures: u32) -> Duration {
        self.settings.backoff.delay(failures, rand::random::<f64>())
    }
}
