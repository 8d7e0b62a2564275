//! One attempt to bring one order in line: GET, plan, maybe PATCH. Joins the
//! D365 client and the pure planner; knows nothing of Kubernetes, so the
//! tests drive it against the emulator over HTTP.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::api::{LastUpdate, ObservedOrder, Reason, SalesOrderStatusSpec, SalesStatus};
use crate::d365::{D365Client, D365Error, ETag, Entity, OrderKey, PatchOutcome};
use crate::reconcile::{Action, Desired, FieldNames, Observed, Outcome, UNSET_DATE, plan};

/// Connection-level settings the planner needs.
#[derive(Clone, Debug)]
pub struct OrderRules {
    pub status_field: String,
    pub date_field: String,
    pub final_statuses: Vec<SalesStatus>,
}

impl OrderRules {
    fn names(&self) -> FieldNames<'_> {
        FieldNames {
            sales_status: &self.status_field,
            delivery_date: &self.date_field,
        }
    }
}

/// The outcome plus what the controller needs to schedule the next attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncResult {
    pub outcome: Outcome,
    /// A 429's Retry-After: the next attempt must not come sooner.
    pub retry_after: Option<Duration>,
}

impl From<Outcome> for SyncResult {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            retry_after: None,
        }
    }
}

/// A connection ready to use: its client and the rules its orders follow.
#[derive(Clone)]
pub struct Resolved {
    pub client: D365Client,
    pub rules: Arc<OrderRules>,
}

/// One GET and at most one PATCH. `attempts` counts this attempt (1 + the
/// failures since the last success) for `lastUpdate.attempts`.
pub async fn sync_order(
    client: &D365Client,
    rules: &OrderRules,
    spec: &SalesOrderStatusSpec,
    attempts: u32,
) -> SyncResult {
    let resolved = Resolved {
        client: client.clone(),
        rules: Arc::new(rules.clone()),
    };
    sync_resolving(spec, attempts, async { Ok(resolved) }).await
}

/// [`sync_order`] with the connection resolved only when D365 is to be
/// asked: the one suspend check, before any connection lookup, so a
/// suspended order reports Suspended even when its connection is broken.
pub async fn sync_resolving(
    spec: &SalesOrderStatusSpec,
    attempts: u32,
    connection: impl Future<Output = Result<Resolved, SyncResult>>,
) -> SyncResult {
    if spec.suspend {
        return Outcome::Suspended.into();
    }
    let resolved = match connection.await {
        Ok(r) => r,
        Err(not_ready) => return not_ready,
    };
    sync_active(&resolved.client, &resolved.rules, spec, attempts).await
}

/// GET, plan, maybe PATCH for an order that is not suspended.
async fn sync_active(
    client: &D365Client,
    rules: &OrderRules,
    spec: &SalesOrderStatusSpec,
    attempts: u32,
) -> SyncResult {
    let desired = match Desired::new(
        spec.sales_status,
        spec.delivery_date.as_deref(),
        spec.policy,
    ) {
        Ok(d) => d,
        Err(e) => return failed(Reason::Rejected, e.to_string(), None),
    };
    let key = OrderKey {
        data_area_id: spec.data_area_id.clone(),
        sales_order_number: spec.sales_order_number.clone(),
    };
    let select = [
        "dataAreaId",
        "SalesOrderNumber",
        &rules.status_field,
        &rules.date_field,
    ];
    let entity = match client.get_order(&key, &select).await {
        Ok(e) => e,
        Err(e) => return from_error(&e, None),
    };
    let observed_view = observed_order(&entity, rules);
    let observed = match Observed::from_entity(
        &entity.fields,
        rules.names(),
        (&key.data_area_id, &key.sales_order_number),
    ) {
        Ok(o) => o,
        Err(e) => return failed(Reason::Rejected, e.to_string(), Some(observed_view)),
    };
    match plan(&desired, &observed, rules.names(), &rules.final_statuses) {
        Action::InSync => Outcome::InSync {
            observed: observed_view,
        }
        .into(),
        Action::Drifted { fields } => Outcome::Drifted {
            observed: observed_view,
            fields,
        }
        .into(),
        Action::InvalidTransition { from, to } => failed(
            Reason::InvalidTransition,
            format!(
                "order {key} is {from}, a final status; refusing to move it to {} (no request sent)",
                to.as_str()
            ),
            Some(observed_view),
        ),
        Action::Patch { changes } => {
            patch(
                client,
                (&key, &entity.etag),
                &changes,
                spec,
                observed_view,
                attempts,
            )
            .await
        }
    }
}

/// The PATCH of a planned change, `If-Match` the ETag just read.
async fn patch(
    client: &D365Client,
    (key, etag): (&OrderKey, &ETag),
    changes: &Map<String, Value>,
    spec: &SalesOrderStatusSpec,
    observed_view: ObservedOrder,
    attempts: u32,
) -> SyncResult {
    let fields: Vec<String> = changes.keys().cloned().collect();
    let done = match client.patch_order(key, etag, changes).await {
        Ok(done) => done,
        Err(e) => return from_error(&e, Some(observed_view)),
    };
    let to_etag = match &done {
        PatchOutcome::NoContent { etag } => etag.as_ref().map(|e| e.as_str().to_owned()),
        PatchOutcome::Entity(e) => Some(e.etag.as_str().to_owned()),
    };
    let observed = ObservedOrder {
        sales_status: Some(spec.sales_status.as_str().into()),
        delivery_date: spec.delivery_date.clone().or(observed_view.delivery_date),
        etag: to_etag.clone(),
    };
    let update = LastUpdate {
        time: Timestamp::now().to_string(),
        from_etag: etag.as_str().to_owned(),
        to_etag,
        attempts,
        fields,
    };
    Outcome::Updated { observed, update }.into()
}

fn failed(reason: Reason, message: String, observed: Option<ObservedOrder>) -> SyncResult {
    Outcome::Failed {
        reason,
        message,
        observed,
    }
    .into()
}

/// Maps a D365 error to a condition reason. A 428 cannot happen while the
/// operator always sends If-Match, so it is a misconfigured service:
/// Rejected, not a retry loop. A fenced write is retried like an
/// unavailable service (the replica exits; the new leader writes).
fn from_error(error: &D365Error, observed: Option<ObservedOrder>) -> SyncResult {
    let reason = match error {
        D365Error::Conflict { .. } => Reason::Conflict,
        D365Error::Throttled { .. } => Reason::Throttled,
        D365Error::Unavailable { .. }
        | D365Error::InvalidResponse { .. }
        | D365Error::Fenced(_) => Reason::Unavailable,
        D365Error::Unauthorized { .. } => Reason::Unauthorized,
        D365Error::Forbidden { .. } => Reason::Forbidden,
        D365Error::NotFound { .. } => Reason::NotFound,
        D365Error::Rejected { .. } | D365Error::PreconditionRequired { .. } => Reason::Rejected,
        D365Error::Config { .. } => Reason::ConnectionNotReady,
    };
    SyncResult {
        outcome: Outcome::Failed {
            reason,
            message: error.to_string(),
            observed,
        },
        retry_after: error.retry_after(),
    }
}

/// The entity's mapped fields for `status.observed`, dates as full-dates.
fn observed_order(entity: &Entity, rules: &OrderRules) -> ObservedOrder {
    let text = |f: &str| {
        entity
            .fields
            .get(f)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // Date part; D365's unset marker (the planner's UNSET_DATE) shows as none.
    let unset = UNSET_DATE.to_string();
    let date = text(&rules.date_field)
        .and_then(|d| d.get(..10).map(str::to_owned))
        .filter(|d| *d != unset);
    ObservedOrder {
        sales_status: text(&rules.status_field),
        delivery_date: date,
        etag: Some(entity.etag.as_str().to_owned()),
    }
}
