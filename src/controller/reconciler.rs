//! The reconcile function and its error policy: one attempt per call, never
//! a sleep inside; the status records the outcome and the requeue time
//! follows from it.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{Instrument as _, debug, info, warn};

use super::admission::{Turned, admit};
use super::context::{Context, replace_status};
use super::sync::{Attempt, SyncResult, sync_resolving};
use crate::api::{Reason, SalesOrderStatus};
use crate::reconcile::{
    CONFLICT_WITHOUT_WRITER_HINT, FailureKind, Outcome, conflict_without_writer, next_status,
};

/// Field manager of every status write.
pub const MANAGER: &str = "sales-order-operator";

/// What makes a reconcile fail; the error policy turns each into backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Conflict, throttling or an unavailable service: retried with backoff.
    #[error("{reason} on order {order}: {message}")]
    Transient {
        order: String,
        reason: Reason,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("writing status of {order}: {source}")]
    StatusWrite {
        order: String,
        #[source]
        source: kube::Error,
    },
    /// The reconcile's task panicked (a bug): retried with backoff.
    #[error("reconcile of {order} ended abnormally: {source}")]
    Task {
        order: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// One attempt for one order. Runs inside kube-runtime's "reconciling
/// object" span, which names the object, so log lines here do not repeat it.
pub async fn reconcile(order: Arc<SalesOrderStatus>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Held only at startup, until connections and Secrets are listed, so a
    // restart never reports a spurious ConnectionNotReady.
    ctx.wait_for_caches().await;
    let mut timer = ctx.metrics.reconcile_timer();
    let oref = ObjectRef::from_obj(order.as_ref());
    let attempts = ctx.failures(&oref) + 1;
    // Before the attempt, so a write it plans can wait for the connection's
    // `$metadata` (see `sync::plan_checked`).
    let namespace = order.namespace().unwrap_or_default();
    super::connection_status::spawn_check_for_order(
        &ctx,
        &namespace,
        &order.spec.connection_ref.name,
    );
    let SyncResult {
        mut outcome,
        retry_after,
    } = match decide(&order, &ctx, attempts).await {
        Ok(result) => result,
        // The connection is full: back for its turn, with no status write
        // and no failure counted (nothing went wrong).
        Err(turn) => {
            debug!(
                delay_ms = turn.as_millis() as u64,
                "connection busy: requeued"
            );
            timer.requeued();
            return Ok(Action::requeue(turn));
        }
    };
    if conflict_without_writer(order.status.as_ref(), &outcome)
        && let Outcome::Failed { message, .. } = &mut outcome
    {
        message.push_str("; ");
        message.push_str(CONFLICT_WITHOUT_WRITER_HINT);
    }
    let reason = outcome.reason();
    log_outcome(&order, &outcome, attempts);

    write_status(&order, &ctx, &outcome).await?;
    super::events::publish_order(&order, &ctx, &outcome, attempts);
    ctx.report(&oref, &order.spec.connection_ref.name, reason);
    if outcome.is_transient() {
        return Err(Error::Transient {
            order: oref.to_string(),
            reason,
            message: outcome.message(),
            retry_after,
        });
    }
    ctx.forget_failures(&oref);
    timer.succeeded();
    Ok(match outcome {
        Outcome::Suspended => Action::await_change(),
        // Stalled, but re-read as often as an order in sync: the drift
        // ends when someone fixes D365.
        Outcome::Drifted { .. } => Action::requeue(ctx.settings.resync_interval),
        _ if outcome.is_stalled() => Action::requeue(ctx.settings.stalled_recheck),
        _ => Action::requeue(ctx.settings.resync_interval),
    })
}

/// Per-object backoff: 1 s, 2 s, 4 s, then doubling with jitter, conflicts
/// to their short cap and errors to the long one (see reconcile::Failures);
/// a 429's Retry-After is a floor.
pub fn error_policy(order: Arc<SalesOrderStatus>, error: &Error, ctx: Arc<Context>) -> Action {
    let kind = match error {
        Error::Transient {
            reason: Reason::Conflict,
            ..
        } => FailureKind::Conflict,
        _ => FailureKind::Error,
    };
    let failures = ctx.record_failure(&ObjectRef::from_obj(order.as_ref()), kind);
    let mut delay = ctx.backoff(failures, kind);
    if let Error::Transient {
        retry_after: Some(floor),
        ..
    } = error
    {
        delay = delay.max(*floor);
    }
    warn!(failures = failures.total, delay_ms = delay.as_millis() as u64, error = %error, "requeue with backoff");
    Action::requeue(delay)
}

/// Duplicates first (a duplicate never touches D365), then the attempt;
/// the connection is resolved only if the order is not suspended, and asked
/// only if it admits the attempt. `Err` is a busy connection's "come back
/// after this long".
async fn decide(
    order: &SalesOrderStatus,
    ctx: &Context,
    attempts: u32,
) -> Result<SyncResult, Duration> {
    if let Some(owner) = ctx.owners.owner_of(order).await {
        return Ok(SyncResult::from(Outcome::Failed {
            reason: Reason::DuplicateOrder,
            message: format!(
                "order {}/{} is already managed by SalesOrderStatus {owner} (the older object keeps it)",
                order.spec.data_area_id, order.spec.sales_order_number
            ),
            observed: None,
        }));
    }
    let namespace = order.namespace().unwrap_or_default();
    let name = &order.spec.connection_ref.name;
    let oref = ObjectRef::from_obj(order).to_string();
    let connection = async {
        let resolved = ctx.d365.resolve(&namespace, name).await.map_err(|e| {
            Turned::Report(Box::new(SyncResult::from(Outcome::Failed {
                reason: e.reason(),
                message: e.to_string(),
                observed: None,
            })))
        })?;
        admit(
            resolved,
            &oref,
            &format!("{namespace}/{name}"),
            &ctx.metrics,
        )
    };
    let attempt = Attempt::of(attempts, order.metadata.generation, order.status.as_ref());
    match sync_resolving(&order.spec, attempt, connection).await {
        Ok(result) => Ok(result),
        Err(Turned::Report(result)) => Ok(*result),
        Err(Turned::Busy(turn)) => Err(turn),
    }
}

/// Patches the status subresource only when it changed, so a fleet of
/// in-sync orders makes no API writes.
async fn write_status(
    order: &SalesOrderStatus,
    ctx: &Context,
    outcome: &Outcome,
) -> Result<(), Error> {
    let next = next_status(
        order.status.as_ref(),
        order.metadata.generation,
        outcome,
        Time(Timestamp::now()),
    );
    if order.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let api: Api<SalesOrderStatus> =
        Api::namespaced(ctx.client.clone(), &order.namespace().unwrap_or_default());
    // A child of the reconcile span in traces (docs/operations.md "Traces").
    let span = match crate::telemetry::traces_on() {
        true => tracing::info_span!(
            "status write",
            otel.kind = "client",
            reason = outcome.reason().as_str(),
        ),
        false => tracing::Span::none(),
    };
    // One of the operator's bounded writes in flight (shared with Events).
    let _turn = ctx.recorder.writes().permit().await;
    replace_status(&api, &order.name_any(), &next)
        .instrument(span)
        .await
        .map_err(|source| Error::StatusWrite {
            order: ObjectRef::from_obj(order).to_string(),
            source,
        })?;
    ctx.metrics.status_written();
    Ok(())
}

/// Logs the outcome under the D365 order's key; the object is named by the
/// enclosing reconcile span.
fn log_outcome(order: &SalesOrderStatus, outcome: &Outcome, attempts: u32) {
    let key = format!(
        "{}/{}",
        order.spec.data_area_id, order.spec.sales_order_number
    );
    match outcome {
        Outcome::Updated { update, .. } => {
            info!(order = %key, from_etag = %update.from_etag, to_etag = update.to_etag.as_deref().unwrap_or(""), attempts, "order updated")
        }
        Outcome::Failed {
            reason, message, ..
        } => {
            warn!(order = %key, reason = reason.as_str(), attempts, detail = %message, "order not in sync")
        }
        Outcome::NotApplied { message, .. } => {
            warn!(order = %key, reason = "NotApplied", attempts, detail = %message, "write accepted but not applied")
        }
        other => {
            info!(order = %key, reason = other.reason().as_str(), "order reconciled")
        }
    }
}
