//! Leader election on a coordination.k8s.io Lease, so that with several
//! replicas exactly one writes to D365 (one writer per order).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::metrics::Metrics;

/// Leader-election flags.
#[derive(clap::Args, Clone, Debug)]
pub struct LeaderArgs {
    /// Hold a Lease before reconciling (needed with replicas > 1).
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "sales-order-operator")]
    pub lease_name: String,
    /// Namespace of the Lease; the chart sets it to the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Holder identity; the pod name in a cluster.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a lease lasts without renewal: the failover time bound.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
}

type LeaseTask = JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>;

/// A held lease, or nothing when election is off.
pub struct Lease {
    state: Option<(watch::Receiver<bool>, LeaseTask)>,
}

/// Waits until this replica leads (returns at once when election is off).
/// Every `standby_ready` flag turns true while waiting (a standby is
/// healthy) and false again on election, until the watches sync.
pub async fn acquire(
    client: &kube::Client,
    args: &LeaderArgs,
    metrics: Arc<Metrics>,
    standby_ready: &[Arc<AtomicBool>],
) -> Result<Lease, LeaderError> {
    if !args.leader_elect {
        metrics.set_leader(true);
        return Ok(Lease { state: None });
    }
    let identity = args.identity.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into()),
            std::process::id()
        )
    });
    let err = |source| LeaderError::Lease {
        namespace: args.lease_namespace.clone(),
        name: args.lease_name.clone(),
        source,
    };
    let duration = args.lease_duration_seconds.max(2);
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        // One field manager per replica: server-side apply only refuses a
        // competing holder when the fields belong to another manager; a
        // shared name would let two replicas both "win" a fresh Lease.
        .with_field_manager(format!("sales-order-operator-{identity}"))
        .build()
        .await
        .map_err(err)?;
    let (mut rx, handle) = manager.watch().await;
    standby_ready
        .iter()
        .for_each(|r| r.store(true, Ordering::SeqCst));
    info!(%identity, lease = %args.lease_name, "waiting for leadership");
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            let result = handle.await;
            let source = match result {
                Ok(Err(e)) => e,
                _ => LeaseManagerError::InconsistentState("lease watcher stopped".into()),
            };
            return Err(err(source));
        }
    }
    standby_ready
        .iter()
        .for_each(|r| r.store(false, Ordering::SeqCst));
    metrics.set_leader(true);
    info!(%identity, lease = %args.lease_name, "became leader");
    Ok(Lease {
        state: Some((rx, handle)),
    })
}

impl Lease {
    /// Resolves when leadership is lost (never when election is off).
    pub async fn lost(&self) -> &'static str {
        let Some((rx, _)) = &self.state else {
            return std::future::pending().await;
        };
        let mut rx = rx.clone();
        loop {
            if !*rx.borrow_and_update() {
                return "another replica holds it";
            }
            if rx.changed().await.is_err() {
                return "lease watcher stopped";
            }
        }
    }

    /// Gives the lease up at once so a standby takes over without waiting
    /// for expiry.
    pub async fn release(self) {
        if let Some((rx, handle)) = self.state {
            drop(rx);
            let _ = handle.await;
        }
    }
}
