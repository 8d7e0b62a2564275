//! Kubernetes Events: one per transition, never one per reconcile. A
//! resync, a stalled recheck or a retry that finds the same situation adds
//! nothing to `kubectl describe`; what changed (the Ready reason) does.

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use super::context::Context;
use crate::api::{ConditionType, D365Connection, LastUpdate, Reason, SalesOrderStatus};
use crate::reconcile::{FAST_RETRIES, Outcome};
use crate::text::abbreviate;

/// An Event to publish: its type, reason and note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: Reason,
    pub note: String,
}

/// An order's situation before this reconcile: its Ready reason and
/// whether it was Stalled (a NotApplied turns from pending to Stalled
/// without a new reason).
pub type Previous<'a> = Option<(&'a str, bool)>;

/// The Event for an order's `outcome`, given its `previous` situation and
/// the attempt number, or none. The rules:
/// - every accepted write (Updated) is one;
/// - a transient reason (Conflict, Throttled, Unavailable, a pending
///   resend) only once its fast retries are spent, and again only if the
///   reason changes: a conflict that clears in a second is no news;
/// - any other reason when it differs from the previous one; InSync only
///   after a reason other than Updated (a recovery from something that
///   was announced), never on the first read of an order already right.
pub fn order_note(previous: Previous<'_>, outcome: &Outcome, attempts: u32) -> Option<Note> {
    let reason = outcome.reason();
    let changed = previous != Some((reason.as_str(), outcome.is_stalled()));
    let (type_, note) = match outcome {
        Outcome::Updated { update, .. } => (EventType::Normal, updated_note(update)),
        _ if outcome.is_transient() => {
            let persistent = attempts == FAST_RETRIES + 1 || (attempts > FAST_RETRIES && changed);
            if !persistent {
                return None;
            }
            let note = format!(
                "{} (attempt {attempts}; retried with backoff)",
                outcome.message()
            );
            (EventType::Warning, note)
        }
        _ if !changed => return None,
        Outcome::InSync { .. } => match previous {
            None | Some(("Updated", _)) => return None,
            // A retry that cleared before it was announced is no news.
            Some((was, _)) if is_transient(was) && attempts <= FAST_RETRIES + 1 => return None,
            Some(_) => (EventType::Normal, outcome.message()),
        },
        Outcome::Suspended => (EventType::Normal, outcome.message()),
        _ => (EventType::Warning, outcome.message()),
    };
    Some(Note {
        type_,
        reason,
        note,
    })
}

fn is_transient(reason: &str) -> bool {
    Reason::parse(reason).is_some_and(Reason::is_transient)
}

/// What a write did, with only the ETags known: the new one is the
/// answer's, else the one read back after it.
fn updated_note(update: &LastUpdate) -> String {
    let fields = update.fields.join(", ");
    match &update.to_etag {
        Some(to) => format!(
            "PATCHed {fields} (If-Match {}, new ETag {to})",
            update.from_etag
        ),
        None => format!(
            "PATCHed {fields} (If-Match {}; D365 returned no new ETag)",
            update.from_etag
        ),
    }
}

/// The Event for a connection whose Ready reason went from `previous` to
/// `reason`: Normal when it works, Warning for every failure (a missing
/// Secret, refused credentials, an unusable field mapping...).
pub fn connection_note(
    previous: Option<&str>,
    ready: bool,
    reason: Reason,
    message: &str,
) -> Option<Note> {
    if previous == Some(reason.as_str()) {
        return None;
    }
    let type_ = if ready && reason == Reason::Authenticated {
        EventType::Normal
    } else {
        EventType::Warning
    };
    Some(Note {
        type_,
        reason,
        note: message.to_owned(),
    })
}

/// Publishes the Event of an order's reconcile, if it is one.
pub fn publish_order(order: &SalesOrderStatus, ctx: &Context, outcome: &Outcome, attempts: u32) {
    let stalled = order
        .condition(ConditionType::Stalled)
        .is_some_and(|c| c.status == "True");
    let previous = order
        .ready_condition()
        .map(|c| (c.reason.as_str(), stalled));
    if let Some(note) = order_note(previous, outcome, attempts) {
        publish(ctx, note, order.object_ref(&()), "Reconcile");
    }
}

/// Publishes the Event of a connection check whose status was written.
pub fn publish_connection(
    conn: &D365Connection,
    ctx: &Context,
    (ready, reason, message): (bool, Reason, &str),
) {
    let previous = conn
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready.as_str())
        })
        .map(|c| c.reason.as_str());
    if let Some(note) = connection_note(previous, ready, reason, message) {
        publish(ctx, note, conn.object_ref(&()), "Check");
    }
}

/// Best effort: never holds the caller. The task runs outside the
/// reconcile's span (its warning names the object itself): a task holding
/// that span would keep it open, and a trace exported while an Event is
/// still being written would lose its reconcile span.
fn publish(
    ctx: &Context,
    note: Note,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    action: &str,
) {
    let event = Event {
        type_: note.type_,
        reason: note.reason.as_str().into(),
        note: Some(abbreviate(&note.note, 1000).into_owned()),
        action: action.into(),
        secondary: None,
    };
    let recorder = ctx.recorder.clone();
    let name = reference.name.clone().unwrap_or_default();
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(object = %name, error = %e, "publishing event failed");
        }
    });
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
