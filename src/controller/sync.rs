//! One attempt to bring one order in line: GET, plan, maybe PATCH. Joins the
//! D365 client and the pure planner; knows nothing of Kubernetes, so the
//! tests drive it against the emulator over HTTP.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::admission::Admission;
use super::capabilities::{KnownFields, order_message, plan_checked};
use crate::api::{
    FieldMapping, LastUpdate, ObservedOrder, Reason, SalesOrderStatusSpec, SalesOrderStatusStatus,
    SalesStatus,
};
use crate::d365::{D365Client, D365Error, ETag, Entity, OrderKey, PatchOutcome};
use crate::reconcile::{
    Accepted, Action, Desired, Evidence, FieldNames, LastWrite, Observed, Outcome, UNSET_DATE,
    accepted, last_write, not_shown,
};

/// Connection-level settings the planner needs.
#[derive(Clone, Debug)]
pub struct OrderRules {
    pub status_field: String,
    pub date_field: String,
    pub final_statuses: Vec<SalesStatus>,
    /// What the connection check learnt from `$metadata`; unknown (every
    /// field writable, dates as DateTimeOffsets) until it has.
    pub capabilities: KnownFields,
}

impl OrderRules {
    /// The properties every read asks for: the key and the mapped fields.
    fn select(&self) -> [&str; 4] {
        [
            "dataAreaId",
            "SalesOrderNumber",
            &self.status_field,
            &self.date_field,
        ]
    }

    pub(crate) fn names(&self) -> FieldNames<'_> {
        FieldNames {
            sales_status: &self.status_field,
            delivery_date: &self.date_field,
        }
    }

    /// The connection's mapping, for messages.
    fn mapping(&self) -> FieldMapping {
        FieldMapping {
            sales_status: self.status_field.clone(),
            delivery_date: self.date_field.clone(),
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

/// This attempt, and what the order's status remembers of earlier ones.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// 1 + the failures since the last success, for `lastUpdate.attempts`.
    pub number: u32,
    /// `metadata.generation` of the spec being applied.
    pub generation: Option<i64>,
    /// `status.lastUpdate`: the last write D365 accepted.
    pub last_update: Option<&'a LastUpdate>,
}

impl<'a> Attempt<'a> {
    /// Attempt `number` of an order at `generation` with `status`.
    pub fn of(
        number: u32,
        generation: Option<i64>,
        status: Option<&'a SalesOrderStatusStatus>,
    ) -> Self {
        Self {
            number,
            generation,
            last_update: status.and_then(|s| s.last_update.as_ref()),
        }
    }

    /// Attempt `number` of an order with no status yet.
    pub fn new(number: u32) -> Self {
        Self::of(number, None, None)
    }
}

/// A connection ready to use: its client, the rules its orders follow and
/// the admission its reconciles pass before asking D365.
#[derive(Clone)]
pub struct Resolved {
    pub client: D365Client,
    pub rules: Arc<OrderRules>,
    pub admission: Arc<Admission>,
}

/// One GET, at most one PATCH, and the GET that proves an accepted PATCH.
pub async fn sync_order(
    client: &D365Client,
    rules: &OrderRules,
    spec: &SalesOrderStatusSpec,
    attempt: Attempt<'_>,
) -> SyncResult {
    let resolved = Resolved {
        client: client.clone(),
        rules: Arc::new(rules.clone()),
        admission: Arc::new(Admission::for_settings(client.settings())),
    };
    let connection = async { Ok::<_, Infallible>((resolved, ())) };
    match sync_resolving(spec, attempt, connection).await {
        Ok(result) => result,
        Err(never) => match never {},
    }
}

/// [`sync_order`] with the connection resolved only when D365 is to be
/// asked: the one suspend check, before any connection lookup, so a
/// suspended order reports Suspended even when its connection is broken.
/// `connection` hands back the connection and a guard held until D365 has
/// answered (an admission ticket), or ends the attempt with the caller's
/// own `E` (not ready, paused, busy).
pub async fn sync_resolving<G, E>(
    spec: &SalesOrderStatusSpec,
    attempt: Attempt<'_>,
    connection: impl Future<Output = Result<(Resolved, G), E>>,
) -> Result<SyncResult, E> {
    if spec.suspend {
        return Ok(Outcome::Suspended.into());
    }
    let (resolved, _held) = connection.await?;
    Ok(sync_active(&resolved.client, &resolved.rules, spec, attempt).await)
}

/// GET, plan, maybe PATCH for an order that is not suspended.
async fn sync_active(
    client: &D365Client,
    rules: &OrderRules,
    spec: &SalesOrderStatusSpec,
    attempt: Attempt<'_>,
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
    let entity = match client.get_order(&key, &rules.select()).await {
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
    match plan_checked(rules, &desired, &observed).await {
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
        Action::NotEditable { fields } => failed(
            Reason::FieldNotEditable,
            order_message(&rules.capabilities, &rules.mapping(), &fields),
            Some(observed_view),
        ),
        Action::Patch { changes } => {
            let fields: Vec<String> = changes.keys().cloned().collect();
            let resends = match last_write(
                attempt.last_update,
                attempt.generation,
                entity.etag.as_str(),
                &fields,
            ) {
                LastWrite::Fresh => 0,
                LastWrite::Resend { resends } => resends,
                LastWrite::NotApplied { message } => {
                    return not_applied(observed_view, None, message, false);
                }
            };
            let write = Write {
                key: &key,
                etag: &entity.etag,
                changes: &changes,
                resends,
            };
            patch(client, rules, write, observed_view, attempt).await
        }
    }
}

/// A planned PATCH: the order, the ETag it goes with, the fields, and
/// which resend of an unapplied change it is (0: the first sending).
struct Write<'a> {
    key: &'a OrderKey,
    etag: &'a ETag,
    changes: &'a Map<String, Value>,
    resends: u32,
}

/// The PATCH of a planned change, `If-Match` the ETag just read. Updated
/// only when proven: a 200 whose entity shows what was sent (a first
/// sending), or a read after a 204 that shows it.
async fn patch(
    client: &D365Client,
    rules: &OrderRules,
    write: Write<'_>,
    observed_view: ObservedOrder,
    attempt: Attempt<'_>,
) -> SyncResult {
    let fields: Vec<String> = write.changes.keys().cloned().collect();
    let done = match client
        .patch_order(write.key, write.etag, write.changes)
        .await
    {
        Ok(done) => done,
        Err(e) => return from_error(&e, Some(observed_view)),
    };
    let (to_etag, returned) = match done {
        PatchOutcome::NoContent { etag } => (etag.map(|e| e.as_str().to_owned()), None),
        PatchOutcome::Entity(e) => (Some(e.etag.as_str().to_owned()), Some(e)),
    };
    // A 204 says D365 took the request, not that the order changed: read it
    // back, so Ready always means D365 was seen holding the values.
    let (returned, read_back) = match returned {
        Some(entity) => (entity, false),
        None => match client.get_order(write.key, &rules.select()).await {
            Ok(entity) => (entity, true),
            Err(e) => return from_error(&e, Some(observed_view)),
        },
    };
    let missing = not_shown(write.changes, Some(&returned.fields), &rules.date_field);
    let update = LastUpdate {
        time: Timestamp::now().to_string(),
        from_etag: write.etag.as_str().to_owned(),
        // The version after the write: the answer's, else the one read back
        // (whose ETag the next read compares, to tell whether anyone wrote).
        to_etag: to_etag.or_else(|| Some(returned.etag.as_str().to_owned())),
        attempts: attempt.number,
        fields: fields.clone(),
        generation: attempt.generation,
        resends: write.resends,
    };
    let evidence = if read_back {
        Evidence::Read
    } else {
        Evidence::Answer
    };
    let verdict = accepted(
        write.resends,
        &fields,
        write.etag.as_str(),
        &missing,
        evidence,
    );
    let (message, retrying) = match verdict {
        Accepted::Updated => {
            let observed = observed_order(&returned, rules);
            return Outcome::Updated { observed, update }.into();
        }
        Accepted::Unconfirmed { message } => (message, true),
        Accepted::NotApplied { message } => (message, false),
    };
    not_applied(
        observed_order(&returned, rules),
        Some(update),
        message,
        retrying,
    )
}

fn not_applied(
    observed: ObservedOrder,
    update: Option<LastUpdate>,
    message: String,
    retrying: bool,
) -> SyncResult {
    Outcome::NotApplied {
        observed,
        update,
        message,
        retrying,
    }
    .into()
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
        // A redirect means the connection's url is not the service's.
        D365Error::Config { .. } | D365Error::Redirected { .. } => Reason::ConnectionNotReady,
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
