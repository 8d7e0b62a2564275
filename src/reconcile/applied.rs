//! Only proven writes count. Two pure decisions: what a PATCH answer
//! proves, and what the next read says about the last write D365 accepted.
//! Together they bound a D365 that accepts writes without applying them to
//! one resend, then Stalled/NotApplied, instead of a PATCH every resync.

use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::api::LastUpdate;

/// Times a change D365 accepted without applying it is sent again before
/// the order is Stalled/NotApplied.
pub const NOT_APPLIED_RESENDS: u32 = 1;

/// What the order as read now says about the last write D365 accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastWrite {
    /// Nothing shows an unapplied write: write as planned.
    Fresh,
    /// The last write was accepted but not applied: send the change again,
    /// as resend number `resends`.
    Resend { resends: u32 },
    /// Sent again already, and still not applied: write no more.
    NotApplied { message: String },
}

/// The last write (`last`) was not applied when it was for this spec
/// (`generation`), the order still differs in a field it wrote
/// (`differing`: the fields the plan would PATCH now), and the ETag read
/// (`etag_now`) is the one it was sent with or the one it produced, so no
/// one else wrote since (every write moves the ETag [obs]).
pub fn last_write(
    last: Option<&LastUpdate>,
    generation: Option<i64>,
    etag_now: &str,
    differing: &[String],
) -> LastWrite {
    let Some(last) = last else {
        return LastWrite::Fresh;
    };
    let same_spec = last.generation.is_some() && last.generation == generation;
    let untouched = last.from_etag == etag_now || last.to_etag.as_deref() == Some(etag_now);
    let fields: Vec<&str> = differing
        .iter()
        .filter(|f| last.fields.contains(f))
        .map(String::as_str)
        .collect();
    if !same_spec || !untouched || fields.is_empty() {
        return LastWrite::Fresh;
    }
    if last.resends < NOT_APPLIED_RESENDS {
        return LastWrite::Resend {
            resends: last.resends + 1,
        };
    }
    LastWrite::NotApplied {
        message: format!(
            "D365 accepted {} PATCHes of {} (If-Match {}) but did not apply them: the order still \
             differs and its ETag is still {etag_now}, so no one else wrote. {GIVING_UP}",
            last.resends + 1,
            fields.join(", "),
            last.from_etag,
        ),
    }
}

/// The end of every NotApplied message: what happens next and what to check.
const GIVING_UP: &str = "Not writing again until the spec or the order in D365 changes; check that \
     the field is editable through OData and that no D365 logic resets it";

/// The fields whose value a PATCH answer does not show as sent: none for a
/// 204 (`returned` is `None`); for a 200, each field `sent` that the
/// entity lacks or holds otherwise (`date_field` compares by day, as D365
/// stores dates at noon UTC).
pub fn not_shown(
    sent: &Map<String, Value>,
    returned: Option<&Map<String, Value>>,
    date_field: &str,
) -> Vec<String> {
    let Some(returned) = returned else {
        return Vec::new();
    };
    sent.iter()
        .filter(|(field, want)| {
            let got = returned.get(field.as_str());
            let same = match (got, field.as_str() == date_field) {
                (Some(got), true) => day(got).is_some_and(|d| Some(d) == day(want)),
                (Some(got), false) => got == *want,
                (None, _) => false,
            };
            !same
        })
        .map(|(field, _)| field.clone())
        .collect()
}

fn day(value: &Value) -> Option<Date> {
    value.as_str()?.get(..10)?.parse().ok()
}

/// What an accepted PATCH (2xx) comes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A first sending, proven by its answer: Ready/Updated.
    Updated,
    /// Not proven: a resend (the last write was accepted and not applied,
    /// so only a read can prove this one), or a 200 still showing other
    /// values with the resend left. Reconciling/NotApplied, read again soon.
    Unconfirmed { message: String },
    /// A resend whose 200 still shows other values: Stalled/NotApplied.
    NotApplied { message: String },
}

/// What showed the values after an accepted PATCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The 200 answer's entity.
    Answer,
    /// A read right after a 204.
    Read,
}

impl Evidence {
    fn as_str(self) -> &'static str {
        match self {
            Self::Answer => "its answer",
            Self::Read => "the read after it",
        }
    }
}

/// Judges an accepted PATCH of `fields` sent with `if_match` as resend
/// number `resends`, after which `evidence` did not show `not_shown`. A
/// read showing every value proves even a resend; an answer's entity
/// proves only a first sending.
pub fn accepted(
    resends: u32,
    fields: &[String],
    if_match: &str,
    not_shown: &[String],
    evidence: Evidence,
) -> Accepted {
    let fields = fields.join(", ");
    if not_shown.is_empty() {
        if resends == 0 || evidence == Evidence::Read {
            return Accepted::Updated;
        }
        return Accepted::Unconfirmed {
            message: format!(
                "sent the PATCH of {fields} again (If-Match {if_match}) after D365 accepted the \
                 previous one without applying it; it counts once a read shows it"
            ),
        };
    }
    let others = format!(
        "{} still shows other values in {}",
        evidence.as_str(),
        not_shown.join(", ")
    );
    if resends < NOT_APPLIED_RESENDS {
        return Accepted::Unconfirmed {
            message: format!(
                "D365 accepted the PATCH of {fields} (If-Match {if_match}) but {others}: not \
                 counted as written; sending it once more"
            ),
        };
    }
    Accepted::NotApplied {
        message: format!(
            "D365 accepted {} PATCHes of {fields} (the last with If-Match {if_match}) but did not \
             apply them: {others}, and the ETag had not moved in between, so no one else wrote. \
             {GIVING_UP}",
            resends + 1
        ),
    }
}

#[cfg(test)]
#[path = "applied_tests.rs"]
mod tests;
