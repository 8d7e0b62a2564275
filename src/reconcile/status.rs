//! Outcome of one reconcile -> the next status, kstatus-style. Pure and
//! deterministic: equal inputs give an equal status, so the controller can
//! compare and skip the write; `lastTransitionTime` moves only on a
//! transition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ConditionType, LastUpdate, ObservedOrder, Reason, SalesOrderStatusStatus};

/// What one reconcile found or did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    InSync {
        observed: ObservedOrder,
    },
    Updated {
        observed: ObservedOrder,
        update: LastUpdate,
    },
    Drifted {
        observed: ObservedOrder,
        fields: Vec<String>,
    },
    /// Any failure; `reason` decides Reconciling (transient) or Stalled.
    Failed {
        reason: Reason,
        message: String,
        observed: Option<ObservedOrder>,
    },
    Suspended,
    /// D365 accepted a write that is not proven applied (see
    /// `reconcile::accepted` and `reconcile::last_write`). `update` is the
    /// write this attempt made, if any; `retrying` while the one resend is
    /// pending (Reconciling), else Stalled.
    NotApplied {
        observed: ObservedOrder,
        update: Option<LastUpdate>,
        message: String,
        retrying: bool,
    },
}

impl Outcome {
    pub fn reason(&self) -> Reason {
        match self {
            Self::InSync { .. } => Reason::InSync,
            Self::Updated { .. } => Reason::Updated,
            Self::Drifted { .. } => Reason::Drifted,
            Self::Failed { reason, .. } => *reason,
            Self::Suspended => Reason::Suspended,
            Self::NotApplied { .. } => Reason::NotApplied,
        }
    }

    /// Still trying (Reconciling, retried with backoff): the reason's
    /// class, except a NotApplied whose resend is pending.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::NotApplied { retrying, .. } => *retrying,
            other => other.reason().is_transient(),
        }
    }

    /// Needs a human (Stalled): the reason's class, except a NotApplied
    /// whose resend is pending, and Observe-policy drift: nothing will
    /// change it but a human, so a health wait must fail on it rather than
    /// wait forever.
    pub fn is_stalled(&self) -> bool {
        match self {
            Self::NotApplied { retrying, .. } => !*retrying,
            Self::Drifted { .. } => true,
            other => other.reason().is_stalled(),
        }
    }

    /// The conditions' message.
    pub fn message(&self) -> String {
        match self {
            Self::InSync { .. } => "D365 matches the spec".into(),
            Self::Updated { update, .. } => format!(
                "PATCHed {} with If-Match {} after {} attempt(s)",
                update.fields.join(", "),
                update.from_etag,
                update.attempts
            ),
            Self::Drifted { fields, .. } => format!(
                "Observe policy: D365 differs from the spec in {}; nothing written",
                fields.join(", ")
            ),
            Self::Failed { message, .. } | Self::NotApplied { message, .. } => message.clone(),
            Self::Suspended => "spec.suspend is true: no D365 requests".into(),
        }
    }
}

/// Hint added to a conflict whose ETag did not move since the last one.
pub const CONFLICT_WITHOUT_WRITER_HINT: &str = "the ETag has not changed since the previous conflict, so no one else wrote \
     this order: a 409 that repeats like this often hides a permission problem of the app's D365 user \
     (see docs/operations.md)";

/// True when `outcome` is a conflict although D365 shows the same ETag as at
/// the previous conflict: a real concurrent writer changes the ETag, so a
/// repeating 409 on an unchanged record points at permissions instead.
pub fn conflict_without_writer(
    current: Option<&SalesOrderStatusStatus>,
    outcome: &Outcome,
) -> bool {
    let Outcome::Failed {
        reason: Reason::Conflict,
        observed: Some(now),
        ..
    } = outcome
    else {
        return false;
    };
    let Some(before) = current else { return false };
    let was_conflict = before
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Ready.as_str() && c.reason == Reason::Conflict.as_str());
    let same_etag = now.etag.is_some()
        && before.observed.as_ref().and_then(|o| o.etag.as_ref()) == now.etag.as_ref();
    was_conflict && same_etag
}

/// The status after `outcome`, starting from `current`.
pub fn next_status(
    current: Option<&SalesOrderStatusStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: Time,
) -> SalesOrderStatusStatus {
    let mut next = current.cloned().unwrap_or_default();
    if next.observed_generation != generation {
        next.conflicts = 0;
    }
    next.observed_generation = generation;
    match outcome {
        Outcome::InSync { observed } | Outcome::Drifted { observed, .. } => {
            next.observed = Some(observed.clone());
        }
        Outcome::Updated { observed, update } => {
            next.observed = Some(observed.clone());
            next.last_update = Some(update.clone());
        }
        Outcome::Failed {
            observed, reason, ..
        } => {
            if let Some(o) = observed {
                next.observed = Some(o.clone());
            }
            if *reason == Reason::Conflict {
                next.conflicts = next.conflicts.saturating_add(1);
            }
        }
        Outcome::NotApplied {
            observed, update, ..
        } => {
            next.observed = Some(observed.clone());
            if let Some(update) = update {
                next.last_update = Some(update.clone());
            }
        }
        Outcome::Suspended => {}
    }

    let already_in_sync = next.conditions.iter().any(|c| {
        c.type_ == ConditionType::Ready.as_str()
            && c.status == "True"
            && [Reason::InSync.as_str(), Reason::Updated.as_str()].contains(&c.reason.as_str())
    });
    if matches!(outcome, Outcome::InSync { .. }) && already_in_sync {
        // Still in sync after Updated or InSync: keep the conditions (and
        // their messages) so a resync writes nothing.
        for c in &mut next.conditions {
            c.observed_generation = generation;
        }
        return next;
    }

    let reason = outcome.reason();
    let message = outcome.message();
    // A suspended order is Ready (reason Suspended): it never blocks a
    // health wait (kstatus Current, `kubectl wait` met); Argo CD's Lua
    // still shows it Suspended.
    let ready = matches!(
        outcome,
        Outcome::InSync { .. } | Outcome::Updated { .. } | Outcome::Suspended
    );
    let states = Kstatus {
        ready,
        reconciling: outcome.is_transient(),
        stalled: outcome.is_stalled(),
    };
    set_kstatus(
        &mut next.conditions,
        states,
        reason,
        &message,
        generation,
        &now,
    );
    next
}

/// The three kstatus conditions of one verdict.
#[derive(Debug, Clone, Copy)]
pub struct Kstatus {
    pub ready: bool,
    pub reconciling: bool,
    pub stalled: bool,
}

/// Sets Ready for one verdict, and Reconciling or Stalled when the verdict
/// makes one True (one reason and message for all): orders and
/// connections alike.
pub fn set_kstatus(
    conditions: &mut Vec<Condition>,
    states: Kstatus,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let states = [
        (ConditionType::Ready, states.ready),
        (ConditionType::Reconciling, states.reconciling),
        (ConditionType::Stalled, states.stalled),
    ];
    for (kind, status) in states {
        // Reconciling and Stalled are abnormal-true: present only while
        // True (kstatus reads an absent one as False), so an order in sync
        // carries one condition, not three.
        if !status && kind != ConditionType::Ready {
            conditions.retain(|c| c.type_ != kind.as_str());
            continue;
        }
        set_condition(conditions, kind, status, reason, message, generation, now);
    }
}

/// Sets the condition of type `kind`, keeping its `lastTransitionTime`
/// unless its status flips: the one way every status of the operator (orders
/// and connections) updates a condition.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: ConditionType,
    status: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let fresh = Condition {
        type_: kind.as_str().into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    };
    match conditions.iter_mut().find(|c| c.type_ == kind.as_str()) {
        Some(existing) if existing.status == status => {
            let since = existing.last_transition_time.clone();
            *existing = Condition {
                last_transition_time: since,
                ..fresh
            };
        }
        Some(existing) => *existing = fresh,
        None => conditions.push(fresh),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
