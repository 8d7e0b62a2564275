//! The condition vocabulary: kstatus types and a closed set of reasons, so
//! `kubectl wait`, Flux and Argo CD read health without custom code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// kstatus condition types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionType {
    /// D365 holds the desired spec.
    Ready,
    /// Work in progress: conflicts, throttling, transient errors.
    Reconciling,
    /// Cannot progress without a human.
    Stalled,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Reconciling => "Reconciling",
            Self::Stalled => "Stalled",
        }
    }
}

/// Every reason a condition can carry. Closed on purpose: alerts and
/// dashboards key on these strings (documented in docs/operations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reason {
    /// D365 already equals the spec.
    InSync,
    /// The operator PATCHed D365 to the spec.
    Updated,
    /// Observe policy: D365 differs from the spec; nothing is written.
    Drifted,
    /// 409/412: someone else wrote the order between our GET and PATCH.
    Conflict,
    /// 429 service protection; the connection waits out Retry-After.
    Throttled,
    /// 5xx, timeouts, connection errors (of D365, or of the API server
    /// while reading a connection's Secret).
    Unavailable,
    /// The token endpoint refused the credentials, or 401 survived a refresh.
    Unauthorized,
    /// 403: the app user lacks the privilege.
    Forbidden,
    /// 404: no such order in that company.
    NotFound,
    /// D365 refused the write (400, or a 500 business-validation failure).
    Rejected,
    /// The spec asks to leave a final status (e.g. Invoiced) — never sent.
    InvalidTransition,
    /// The referenced D365Connection is missing or invalid.
    ConnectionNotReady,
    /// The connection's client-secret Secret or key is missing.
    SecretNotFound,
    /// Another, older object already manages this order.
    DuplicateOrder,
    /// `spec.suspend` is true.
    Suspended,
    /// D365Connection only: the token endpoint accepted the credentials.
    Authenticated,
    /// D365 accepted a PATCH (2xx) but did not apply it, and did so again
    /// when sent once more: the order still differs and no one else wrote.
    /// Stalled; while the one resend is pending, Reconciling.
    NotApplied,
    /// A mapped field is not a property of the entity type in `$metadata`.
    FieldNotFound,
    /// A mapped field is not editable in this environment (`$metadata`
    /// AllowEdit=false, Computed, read-only Permissions): a connection is
    /// not Ready, an order whose change needs it is Stalled, never sent.
    FieldNotEditable,
    /// D365Connection only: the entity set is not in `$metadata`.
    EntitySetNotFound,
    /// D365Connection only: the credentials work but `$metadata` could not
    /// be read; field capabilities are unknown and writes are not checked
    /// before they are sent. Ready stays True.
    MetadataUnavailable,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Self::InSync,
        Self::Updated,
        Self::Drifted,
        Self::Conflict,
        Self::Throttled,
        Self::Unavailable,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Rejected,
        Self::InvalidTransition,
        Self::ConnectionNotReady,
        Self::SecretNotFound,
        Self::DuplicateOrder,
        Self::Suspended,
        Self::Authenticated,
        Self::NotApplied,
        Self::FieldNotFound,
        Self::FieldNotEditable,
        Self::EntitySetNotFound,
        Self::MetadataUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "InSync",
            Self::Updated => "Updated",
            Self::Drifted => "Drifted",
            Self::Conflict => "Conflict",
            Self::Throttled => "Throttled",
            Self::Unavailable => "Unavailable",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::Rejected => "Rejected",
            Self::InvalidTransition => "InvalidTransition",
            Self::ConnectionNotReady => "ConnectionNotReady",
            Self::SecretNotFound => "SecretNotFound",
            Self::DuplicateOrder => "DuplicateOrder",
            Self::Suspended => "Suspended",
            Self::Authenticated => "Authenticated",
            Self::NotApplied => "NotApplied",
            Self::FieldNotFound => "FieldNotFound",
            Self::FieldNotEditable => "FieldNotEditable",
            Self::EntitySetNotFound => "EntitySetNotFound",
            Self::MetadataUnavailable => "MetadataUnavailable",
        }
    }

    /// Reasons that need a human: they set Stalled=True and wait for a spec
    /// change or a long recheck instead of retrying.
    pub fn is_stalled(self) -> bool {
        matches!(
            self,
            Self::Unauthorized
                | Self::Forbidden
                | Self::NotFound
                | Self::Rejected
                | Self::InvalidTransition
                | Self::ConnectionNotReady
                | Self::SecretNotFound
                | Self::DuplicateOrder
                | Self::NotApplied
                | Self::FieldNotFound
                | Self::FieldNotEditable
                | Self::EntitySetNotFound
        )
    }

    /// Reasons that mean "still trying": Reconciling=True with backoff.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Conflict | Self::Throttled | Self::Unavailable)
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_has_one_class() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert!(!(r.is_stalled() && r.is_transient()), "{r} is both");
        }
        assert_eq!(Reason::parse("Bogus"), None);
    }
}
