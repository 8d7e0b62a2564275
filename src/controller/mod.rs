//! kube-runtime wiring: watches, triggers and the Controller loop. The only
//! module that joins Kubernetes and D365.

mod admission;
mod by_connection;
pub mod capabilities;
mod connection_status;
mod connections;
mod context;
mod credentials;
mod duplicates;
mod events;
mod owners;
mod reconciler;
pub mod recorder;
mod relist;
pub mod shard;
mod slim;
pub mod sync;
mod task;

use std::future::{Future, ready as done};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;

use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use recorder::{ApiWrites, Recorder};
use relist::{ListHold, triggers};
use serde::de::DeserializeOwned;
use task::reconcile_as_task;
use tokio::sync::watch;
use tracing::{debug, info};

pub use context::{Context, Settings, status_patch_params, status_replacement};
pub use owners::Owners;
pub use reconciler::{Error, MANAGER, error_policy, reconcile};

use crate::api::{CREDENTIALS_SELECTOR, D365Connection, SalesOrderStatus};
use crate::metrics::Metrics;
pub use connection_status::ready_status;
pub use connections::Connections;
pub use shard::{Shard, ShardArgs};

/// What to watch and how hard to work.
#[derive(Clone, Debug)]
pub struct Options {
    /// Watch one namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Only orders matching this label selector.
    pub label_selector: Option<String>,
    pub max_concurrent_reconciles: u16,
    pub settings: Settings,
    /// Who writes each D365 order: one index for every controller of the
    /// process, made for as many controllers as will run.
    pub owners: Arc<Owners>,
    /// This replica to D365: its User-Agent and its write fence.
    pub writer: crate::d365::Writer,
    /// Where connections may send the client secret and tokens.
    pub destinations: crate::d365::Destinations,
    /// The largest D365 answer (data or `$batch`) a client reads.
    pub max_answer_bytes: usize,
    /// The projected ServiceAccount token that connections using workload
    /// identity present; none: such connections are refused.
    pub workload_identity_token_file: Option<std::path::PathBuf>,
    /// The orders this process takes; the others are never seen.
    pub shard: Shard,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespace: None,
            label_selector: None,
            max_concurrent_reconciles: 0,
            settings: Settings::default(),
            owners: Arc::default(),
            writer: crate::d365::Writer::default(),
            destinations: crate::d365::Destinations::default(),
            max_answer_bytes: crate::d365::DEFAULT_MAX_ANSWER_BYTES,
            workload_identity_token_file: None,
            shard: Shard::default(),
        }
    }
}

/// Runs the controller until `shutdown` resolves; `ready` turns true once
/// every watch has listed its objects. What triggers a reconcile:
/// - an order's spec or reconcile-requested-at annotation changes;
/// - a connection's spec changes or it is deleted: its orders;
/// - a labelled Secret changes, is deleted, gains or loses the credentials
///   label: the orders of connections using it;
/// - an order that owns a D365 order goes, or a newer owner appears: the
///   duplicates concerned, in whichever controller watches them (the owner
///   index wakes them);
/// - a watch re-lists, and every resync interval: per-object state of
///   objects no longer listed is pruned.
///
/// The Controller polls every stream below, so the stores fill as it runs.
pub async fn run(
    client: Client,
    options: Options,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = options.namespace.as_deref();
    let (orders, order_writer) = reflector::store();
    let (connections, connection_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    let (synced_tx, synced_rx) = watch::channel(false);
    let (listed_tx, listed_rx) = watch::channel(false);
    let (wake_tx, wake_rx) = mpsc::unbounded::<ObjectRef<SalesOrderStatus>>();
    let owners = options.owners.join(
        options.namespace.clone(),
        connections.clone(),
        wake_tx.clone(),
    );
    let ctx = context(
        &client,
        &options,
        metrics,
        (&orders, owners),
        (connections, secrets),
        synced_rx,
    );
    let order_changes = order_changes(
        api(&client, ns),
        (options.label_selector.as_deref(), options.shard),
        (order_writer, ListHold::new(wake_tx.clone())),
        (ctx.clone(), listed_tx),
    );
    let connection_changes = connection_changes(api(&client, ns), connection_writer, ctx.clone());
    let secret_changes = secret_changes(api(&client, ns), secret_writer, ctx.clone());

    let gate = tokio::spawn(open_when_listed(ctx.clone(), synced_tx, listed_rx, ready));
    let pruning = tokio::spawn(prune_every(ctx.clone(), ctx.settings.resync_interval));
    let config = ControllerConfig::default().concurrency(options.max_concurrent_reconciles);
    Controller::for_stream(order_changes, orders.clone())
        .with_config(config)
        .watches_stream(connection_changes, {
            let ctx = ctx.clone();
            move |conn| requeue_once_synced(&ctx, &[Arc::new(conn)])
        })
        .watches_stream(secret_changes, {
            let ctx = ctx.clone();
            move |secret| {
                requeue_once_synced(&ctx, &users_of_secret(&ctx.d365.connections, &secret))
            }
        })
        .reconcile_on(wake_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_as_task, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(object = %obj, "reconciled"),
                Err(e) => debug!(error = %e, "reconcile failed or watch error (retried)"),
            }
        })
        .await;
    gate.abort();
    pruning.abort();
    info!("controller stopped");
}

fn context(
    client: &Client,
    options: &Options,
    metrics: Arc<Metrics>,
    (orders, owners): (&Store<SalesOrderStatus>, owners::Feed),
    (connections, secrets): (Store<D365Connection>, Store<PartialObjectMeta<Secret>>),
    synced: watch::Receiver<bool>,
) -> Arc<Context> {
    let reporter = Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let d365 = Connections::new(
        connections,
        secrets,
        Arc::new(client.clone()),
        metrics.clone(),
    )
    .with_writer(options.writer.clone())
    .with_destinations(options.destinations.clone())
    .with_answer_limit(options.max_answer_bytes)
    .with_workload_identity(options.workload_identity_token_file.clone());
    let mut ctx = Context::new(
        client.clone(),
        options.settings.clone(),
        (orders.clone(), owners),
        d365,
        Recorder::new(client.clone(), reporter, ApiWrites::default()),
        metrics,
        synced,
    );
    ctx.checks.only_used = options.label_selector.is_some();
    ctx.scope.clone_from(&options.namespace);
    Arc::new(ctx)
}

/// Orders whose spec or reconcile-requested-at annotation changed. On the
/// way: the owner index follows every event, InitDone says the orders are
/// listed, and deleted or no longer listed orders are forgotten.
/// Orders of other shards are dropped before the store ([`Shard::keep`]);
/// orders a list brings in wait for its end ([`ListHold`]).
fn order_changes(
    api: Api<SalesOrderStatus>,
    (label_selector, shard): (Option<&str>, Shard),
    (writer, hold): (Writer<SalesOrderStatus>, ListHold),
    (ctx, listed): (Arc<Context>, watch::Sender<bool>),
) -> impl Stream<Item = Result<SalesOrderStatus, watcher::Error>> + Send + 'static {
    let mut config = watcher::Config::default();
    if let Some(selector) = label_selector {
        config = config.labels(selector);
    }
    let events = watch_all(api, config).try_filter_map(move |event| done(Ok(shard.keep(event))));
    triggers(events, writer, hold, move |event| {
        if matches!(event, Event::InitDone) {
            listed.send_replace(true);
        }
        on_order_event(&ctx, event)
    })
}

/// Connections with a new generation (checked on the way) or deleted (their
/// client forgotten); status-only updates pass nothing.
fn connection_changes(
    api: Api<D365Connection>,
    writer: Writer<D365Connection>,
    ctx: Arc<Context>,
) -> impl Stream<Item = Result<D365Connection, watcher::Error>> + Send + 'static {
    watch_all(api, watcher::Config::default())
        .reflect(writer)
        .try_filter_map(move |event| done(Ok(connection_status::on_event(&ctx, &event))))
}

/// Changed or deleted Secrets, metadata only (the operator reads a Secret's
/// data just when it builds a client), and only those labelled as
/// credentials: no other Secret is cached. A Secret gaining the label
/// arrives as an Apply, one losing it as a Delete; either way the
/// connections using it are re-checked on the way.
fn secret_changes(
    api: Api<PartialObjectMeta<Secret>>,
    writer: Writer<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    secret_watch(api)
        .reflect(writer)
        .inspect_ok(move |event| on_secret_event(&ctx, event))
        .touched_objects()
}

/// The operator's watch of Secrets: metadata of labelled ones only, so an
/// unlabelled Secret never reaches its cache. Public so a test can run it
/// against a real apiserver (tests/e2e/secret_watch.rs).
pub fn secret_watch(
    api: Api<PartialObjectMeta<Secret>>,
) -> impl Stream<Item = Result<Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send + 'static {
    watch_all(api, watcher::Config::default().labels(CREDENTIALS_SELECTOR))
}

/// Lets reconciles and connection checks start once connections and Secrets
/// are listed (so a restart reports no Secret missing that is merely not
/// listed yet), checks every connection, and flags readiness once orders
/// are listed too.
///
/// This task is the only waiter on the connection and Secret stores, as the
/// Controller is on the order store: kube-runtime's store readiness signal
/// wakes only the last task that waited on it, and a second waiter on one
/// store hung startup. Everyone else waits on watch channels, which wake all.
async fn open_when_listed(
    ctx: Arc<Context>,
    synced: watch::Sender<bool>,
    mut orders_listed: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
) {
    let _ = ctx.d365.connections.wait_until_ready().await;
    let _ = ctx.d365.secrets.wait_until_ready().await;
    synced.send_replace(true);
    debug!("connections and secrets listed");
    for conn in ctx.d365.connections.state() {
        connection_status::spawn_check(&ctx, &conn);
    }
    let _ = orders_listed.wait_for(|listed| *listed).await;
    ctx.owners.listed();
    if !ready.swap(true, Ordering::SeqCst) {
        info!("watches synced; operator ready");
    }
}

/// Namespaced or cluster-wide, as the options say.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch that retries with backoff instead of ending on errors, its
/// objects slimmed (see [`slim`]) before any cache holds them.
fn watch_all<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    kube::runtime::watcher(api, config)
        .default_backoff()
        .modify(slim::slim)
}

/// A changed or deleted Secret re-checks the connections that use it.
fn on_secret_event(ctx: &Arc<Context>, event: &Event<PartialObjectMeta<Secret>>) {
    if let Event::Apply(secret) | Event::InitApply(secret) | Event::Delete(secret) = event {
        for conn in users_of_secret(&ctx.d365.connections, secret) {
            connection_status::spawn_check(ctx, &conn);
        }
    }
}

/// The connections whose credentials are in `secret`.
fn users_of_secret(
    connections: &Store<D365Connection>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<Arc<D365Connection>> {
    let (ns, name) = (secret.namespace(), secret.name_any());
    connections
        .state()
        .into_iter()
        .filter(|c| c.namespace() == ns && c.spec.auth.credentials_secret() == Some(&name))
        .collect()
}

/// The orders of `changed` connections, to requeue. None until connections
/// and Secrets are synced: every order's first reconcile waits for that, so
/// it sees the change anyway, and a second one right after could read the
/// order before its own status write and undo it.
fn requeue_once_synced(
    ctx: &Context,
    changed: &[Arc<D365Connection>],
) -> Vec<ObjectRef<SalesOrderStatus>> {
    if !ctx.caches_synced() {
        return Vec::new();
    }
    changed
        .iter()
        .flat_map(|conn| {
            let ns = conn.namespace().unwrap_or_default();
            ctx.by_connection.orders_of(&ns, &conn.name_any())
        })
        .collect()
}

/// The owner and connection indexes follow every event (the owner index
/// wakes duplicates); a deleted
/// order, or after a re-list any order no longer listed, drops its failure
/// count and metrics. The store is updated before this runs.
fn on_order_event(ctx: &Context, event: &Event<SalesOrderStatus>) {
    ctx.owners.apply(event, &ctx.orders);
    ctx.by_connection.apply(event);
    match event {
        Event::Delete(order) => ctx.forget(&ObjectRef::from_obj(order)),
        Event::InitDone => ctx.prune(),
        _ => {}
    }
}

/// Prunes per-object state every `period`, for what no event shows: a
/// reconcile that ended after its object's Delete and recorded it again.
async fn prune_every(ctx: Arc<Context>, period: Duration) {
    // A zero interval (`--resync-interval 0s`) would panic here.
    let mut tick = tokio::time::interval(period.max(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        ctx.prune();
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod prune_tests;
