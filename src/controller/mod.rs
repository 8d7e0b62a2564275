//! kube-runtime wiring: watches, triggers and the Controller loop. The only
//! module that joins Kubernetes and D365.

mod connection_status;
mod connections;
mod context;
mod duplicates;
mod reconciler;
pub mod sync;

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, predicates, reflector::store::Writer};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{debug, info};

pub use context::{Context, Settings};
pub use reconciler::{Error, MANAGER, error_policy, reconcile};

use crate::api::{D365Connection, RECONCILE_REQUESTED_AT, SalesOrderStatus};
use crate::metrics::Metrics;

/// What to watch and how hard to work.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Watch one namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Only orders matching this label selector.
    pub label_selector: Option<String>,
    pub max_concurrent_reconciles: u16,
    pub settings: Settings,
}

/// Runs the controller until `shutdown` resolves; `ready` turns true once
/// every watch has listed its objects.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api = |c: &Client| -> (
        Api<SalesOrderStatus>,
        Api<D365Connection>,
        Api<PartialObjectMeta<Secret>>,
    ) {
        match &options.namespace {
            Some(ns) => (
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
                Api::namespaced(c.clone(), ns),
            ),
            None => (
                Api::all(c.clone()),
                Api::all(c.clone()),
                Api::all(c.clone()),
            ),
        }
    };
    let (order_api, connection_api, secret_api) = api(&client);
    let (orders, order_writer) = reflector::store();
    let (connections, connection_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut ctx = Context::new(
        client.clone(),
        options.settings.clone(),
        (orders.clone(), connections.clone(), secrets.clone()),
        Recorder::new(client.clone(), reporter),
        metrics,
    );
    ctx.only_used_connections = options.label_selector.is_some();
    let ctx = Arc::new(ctx);
    let (trigger_tx, trigger_rx) = mpsc::unbounded::<ObjectRef<SalesOrderStatus>>();

    // Connections and Secrets (metadata only: the operator reads a Secret's
    // data just when it builds a client) requeue the orders that use them.
    let conn_events =
        watcher(connection_api, watcher::Config::default()).reflect(connection_writer);
    let conn_task = tokio::spawn({
        let (orders, ctx, tx) = (orders.clone(), ctx.clone(), trigger_tx.clone());
        async move {
            let mut events = std::pin::pin!(conn_events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        for r in connection_status::on_event(&ctx, &event)
                            .map(|c| {
                                orders_using(
                                    &orders,
                                    &c.namespace().unwrap_or_default(),
                                    &c.name_any(),
                                )
                            })
                            .unwrap_or_default()
                        {
                            let _ = tx.unbounded_send(r);
                        }
                    }
                    Err(e) => debug!(error = %e, "connection watch error (retried with backoff)"),
                }
            }
        }
    });
    let secret_stream = reflect(
        secret_writer,
        watcher(secret_api, watcher::Config::default()),
    );
    let secret_task = tokio::spawn(forward(secret_stream, trigger_tx.clone(), {
        let (orders, connections, ctx) = (orders.clone(), connections.clone(), ctx.clone());
        move |secret: &PartialObjectMeta<Secret>| {
            let ns = secret.namespace().unwrap_or_default();
            let users: Vec<_> = connections
                .state()
                .into_iter()
                .filter(|c| {
                    c.namespace().as_deref() == Some(&ns)
                        && c.spec.auth.client_secret_ref.name == secret.name_any()
                })
                .collect();
            users
                .iter()
                .for_each(|c| connection_status::spawn_check(&ctx, c));
            users
                .iter()
                .flat_map(|c| orders_using(&orders, &ns, &c.name_any()))
                .collect()
        }
    }));

    let mut order_wc = watcher::Config::default();
    if let Some(sel) = &options.label_selector {
        order_wc = order_wc.labels(sel);
    }
    let order_stream = watcher(order_api, order_wc)
        .default_backoff()
        .reflect(order_writer)
        .inspect_ok({
            let (ctx, trigger_tx) = (ctx.clone(), trigger_tx.clone());
            move |event| {
                if matches!(event, Event::InitDone) && !ready.swap(true, Ordering::SeqCst) {
                    info!("watches synced; operator ready");
                }
                on_order_event(&ctx, &trigger_tx, event)
            }
        })
        .touched_objects()
        .predicate_filter(trigger_hash, Default::default());

    // Orders reconcile only once connections and secrets are known, so a
    // restart never reports a spurious ConnectionNotReady. Each store gets
    // exactly one waiter: kube-runtime's readiness signal wakes only the
    // last task that polled it (the Controller itself waits on `orders`;
    // readiness is flagged from the order stream's InitDone instead).
    debug!("waiting for connections");
    let _ = connections.wait_until_ready().await;
    debug!("waiting for secrets");
    let _ = secrets.wait_until_ready().await;
    ctx.caches_ready.store(true, Ordering::SeqCst);
    for conn in connections.state() {
        connection_status::spawn_check(&ctx, &conn);
    }
    debug!("caches ready");
    let config = ControllerConfig::default().concurrency(options.max_concurrent_reconciles);
    Controller::for_stream(order_stream, orders)
        .with_config(config)
        .reconcile_on(trigger_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
    conn_task.abort();
    secret_task.abort();
    info!("controller stopped");
}

fn watcher<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    kube::runtime::watcher(api, wc).default_backoff()
}

fn reflect<K>(
    writer: Writer<K>,
    stream: impl futures::Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    stream.reflect(writer).touched_objects()
}

/// Drives a reflector stream and turns each touched object into triggers.
async fn forward<K>(
    stream: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    tx: mpsc::UnboundedSender<ObjectRef<SalesOrderStatus>>,
    map: impl Fn(&K) -> Vec<ObjectRef<SalesOrderStatus>> + Send + 'static,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(obj) => {
                for r in map(&obj) {
                    let _ = tx.unbounded_send(r);
                }
            }
            Err(e) => debug!(error = %e, "watch error (retried with backoff)"),
        }
    }
}

fn orders_using(
    orders: &Store<SalesOrderStatus>,
    namespace: &str,
    connection: &str,
) -> Vec<ObjectRef<SalesOrderStatus>> {
    orders
        .state()
        .iter()
        .filter(|o| {
            o.namespace().as_deref() == Some(namespace) && o.spec.connection_ref.name == connection
        })
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Deleted orders drop their failure count and metrics, and wake the
/// duplicates that may now own the D365 order.
fn on_order_event(
    ctx: &Context,
    tx: &mpsc::UnboundedSender<ObjectRef<SalesOrderStatus>>,
    event: &Event<SalesOrderStatus>,
) {
    if let Event::Delete(order) = event {
        let oref = ObjectRef::from_obj(order);
        ctx.forget_failures(&oref);
        ctx.metrics.forget_object(&oref.to_string());
        for dup in duplicates::duplicates_of(order, ctx.orders.state().iter().map(AsRef::as_ref)) {
            let _ = tx.unbounded_send(ObjectRef::from_obj(dup));
        }
    }
}

/// Reconcile on spec changes (generation) and on a new value of the
/// reconcile-requested-at annotation; status writes do not retrigger.
fn trigger_hash(order: &SalesOrderStatus) -> Option<u64> {
    let mut h = DefaultHasher::new();
    predicates::generation(order).hash(&mut h);
    order.annotations().get(RECONCILE_REQUESTED_AT).hash(&mut h);
    Some(h.finish())
}
