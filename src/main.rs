//! `sales-order-operator`: `run` (default) reconciles orders; `crd` prints
//! the CRDs; `export` prints manifests for orders already in D365.

mod client_args;
mod export_cmd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sales_order_operator::controller::{self, Options, Owners, Settings, ShardArgs};
use sales_order_operator::d365::{Destinations, Writer};
use sales_order_operator::metrics::Metrics;
use sales_order_operator::reconcile::{Backoff, BackoffPolicy};
use sales_order_operator::telemetry::{self, LogFormat};
use sales_order_operator::{api, server};

/// jemalloc: see Cargo.toml (issue 12, memory at 10,000 orders); its
/// options are compiled in (.cargo/config.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(version, about = "GitOps for Dynamics 365 F&O sales-order status")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile SalesOrderStatus objects (the default).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML (what crds/ holds).
    Crd,
    /// Print SalesOrderStatus manifests (policy Observe) for orders that
    /// exist in D365, to onboard them without changing anything.
    Export(Box<export_cmd::ExportArgs>),
}

/// Every flag is also an environment variable, as charts expect.
#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Watch only these namespaces, comma-separated (all when empty); one
    /// controller runs per namespace, so namespaced RBAC is enough.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    namespace: String,
    /// Only reconcile orders matching this label selector.
    #[arg(long, env = "LABEL_SELECTOR", default_value = "")]
    selector: String,
    /// Re-read in-sync orders this often (drift detection).
    #[arg(long, env = "RESYNC_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    resync_interval: Duration,
    /// Re-check Stalled orders this often without a spec change.
    #[arg(long, env = "STALLED_RECHECK", default_value = "30m", value_parser = humantime::parse_duration)]
    stalled_recheck: Duration,
    /// Longest per-order backoff after repeated errors (5xx, timeouts).
    #[arg(long, env = "BACKOFF_CAP", default_value = "5m", value_parser = humantime::parse_duration)]
    backoff_cap: Duration,
    /// Longest per-order backoff after repeated conflicts (409/412), which
    /// follow 1s, 2s, 4s, ... up to it (default: see docs/operations.md).
    #[arg(long, env = "CONFLICT_BACKOFF_CAP", default_value = "16s", value_parser = humantime::parse_duration)]
    conflict_backoff_cap: Duration,
    /// Orders reconciled at once (D365 load is bounded per connection too).
    #[arg(long, env = "MAX_CONCURRENT_RECONCILES", default_value_t = 64)]
    max_concurrent_reconciles: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    #[command(flatten)]
    client: client_args::ClientArgs,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "auto")]
    log_format: LogFormat,
    #[command(flatten)]
    leader: sales_order_operator::leader::LeaderArgs,
    #[command(flatten)]
    shard: ShardArgs,
}

impl Default for RunArgs {
    fn default() -> Self {
        let cli = Cli::parse_from(["sales-order-operator", "run"]);
        match cli.command {
            Some(Command::Run(args)) => *args,
            _ => unreachable!("parsed `run`"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => print!("{}", api::crds_yaml()?),
        Some(Command::Run(args)) => run(*args).await?,
        Some(Command::Export(args)) => export_cmd::export(*args).await?,
        None => run(RunArgs::default()).await?,
    }
    Ok(())
}

async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let shard = args.shard.shard().context("sharding flags")?;
    // Each shard elects its own leader; one shard keeps the plain name.
    args.leader.lease_name = shard.lease_name(&args.leader.lease_name);
    let destinations = args.client.destinations()?;
    // kube_runtime::controller at info keeps its "reconciling object" span,
    // which names the object in every reconcile log line.
    let traces = telemetry::init_with_traces(
        args.log_format,
        "info,kube_runtime=warn,kube_runtime::controller=info,hyper=warn",
    )?;
    // Every exit (a lost lease too) flushes the spans still buffered.
    let result = operate(args, shard, destinations).await;
    traces.shutdown().await;
    result
}

/// The operator proper, once logging (and tracing) is up.
async fn operate(
    args: RunArgs,
    shard: controller::Shard,
    destinations: Destinations,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::default());
    metrics.set_shards(shard.count());
    let namespaces = watched_namespaces(&args.namespace);
    let ready: Vec<Arc<AtomicBool>> = namespaces
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let ready = Arc::new(ready);
    let server = tokio::spawn(server::serve(
        args.http_addr,
        metrics.clone(),
        ready.clone(),
    ));

    let mut options = options(&args, namespaces.len(), destinations, shard);
    let shutdown = shutdown_signal();
    let lease =
        sales_order_operator::leader::acquire(&client, &args.leader, metrics.clone(), &ready[..])
            .await
            .context("leader election")?;
    options.writer = Writer {
        replica: Some(args.leader.identity()),
        fence: lease.fence(),
    };
    tracing::info!(namespace = %args.namespace, selector = %args.selector,
        shard = shard.index(), shards = shard.count(), "starting controller");

    let shutdown = futures::future::FutureExt::shared(shutdown);
    let controllers =
        namespaces
            .into_iter()
            .zip(ready.iter().cloned())
            .map(|(namespace, ready)| {
                let options = Options {
                    namespace,
                    ..options.clone()
                };
                controller::run(
                    client.clone(),
                    options,
                    metrics.clone(),
                    ready,
                    shutdown.clone(),
                )
            });
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        lost = lease.lost() => {
            // Writes stopped already (the fence is closed); stop looking
            // ready and exit, so Kubernetes restarts this as a standby.
            ready.iter().for_each(|r| r.store(false, Ordering::SeqCst));
            metrics.set_leader(&args.leader.lease_name, false);
            tracing::error!(reason = %lost, "lost the leader lease; exiting");
            anyhow::bail!("lost the leader lease ({lost}); exiting so a standby takes over");
        }
    }
    lease.release().await;
    server.abort();
    Ok(())
}

/// `--namespace a,b` as one entry per namespace; all namespaces (`None`)
/// when empty.
fn watched_namespaces(flag: &str) -> Vec<Option<String>> {
    if flag.trim().is_empty() {
        return vec![None];
    }
    flag.split(',')
        .map(|n| Some(n.trim().to_owned()))
        .filter(|n| n.as_deref() != Some(""))
        .collect()
}

/// The controllers' options from the flags; the namespace and the writer
/// (known once the Lease is held) are filled in later.
fn options(
    args: &RunArgs,
    controllers: usize,
    destinations: Destinations,
    shard: controller::Shard,
) -> Options {
    Options {
        namespace: None,
        label_selector: Some(args.selector.clone()).filter(|s| !s.is_empty()),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        // One owner index for every controller, so duplicates are
        // found across the watched namespaces.
        owners: Arc::new(Owners::new(controllers)),
        settings: Settings {
            resync_interval: args.resync_interval,
            stalled_recheck: args.stalled_recheck,
            backoff: Backoff {
                conflict: BackoffPolicy::conflicts(args.conflict_backoff_cap),
                error: BackoffPolicy {
                    cap: args.backoff_cap,
                    ..BackoffPolicy::default()
                },
            },
        },
        writer: Writer::default(),
        destinations,
        max_answer_bytes: args.client.max_answer_bytes(),
        workload_identity_token_file: args.client.workload_identity_token_file.clone(),
        shard,
    }
}

/// SIGTERM (Kubernetes) or Ctrl-C: stop taking work, finish in-flight
/// reconciles, exit.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown requested");
}
