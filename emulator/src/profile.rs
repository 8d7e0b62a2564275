//! Named sets of switches. `strict` turns every [unverified] behaviour the
//! fact sheet leaves open to the side that is hardest on a client, so a
//! client that works against it makes no assumption D365 might break.

use serde::{Deserialize, Serialize};

use crate::Faults;

/// Which set of defaults the switches start from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The defaults: the likeliest D365 behaviour where the fact sheet
    /// knows it, the mildest where it does not.
    #[default]
    Default,
    /// Every [unverified] behaviour at its hardest.
    Strict,
}

impl Profile {
    /// `faults` with this profile's behaviours; faults that inject failures
    /// (rates, latency, throttling, padding) are left as they are.
    pub fn apply(self, faults: Faults) -> Faults {
        match self {
            Profile::Default => faults,
            Profile::Strict => strict(faults),
        }
    }
}

/// Each line is one [unverified] (or contested) behaviour of the fact sheet.
fn strict(faults: Faults) -> Faults {
    // The order status moves by posting in F&O, and AllowEdit is enforced
    // for OData too: it leans to "not editable".
    let mut read_only_fields = faults.read_only_fields.clone();
    if !read_only_fields.iter().any(|f| f == "SalesOrderStatus") {
        read_only_fields.push("SalesOrderStatus".to_string());
    }
    Faults {
        read_only_fields,
        // Stale If-Match: 409 (the one field report) rather than the
        // standard's 412, so a client must treat both as a conflict.
        conflict_status: 409,
        // With optimistic locking on, a blind PATCH is refused: a client
        // must always send If-Match.
        require_if_match: true,
        missing_if_match_status: 428,
        // No ETag headers anywhere: the body's @odata.etag is all there is.
        get_etag_header: false,
        patch_etag_header: false,
        // A PATCH answers 204 with nothing to learn from.
        patch_returns_entity: false,
        // Errors quote the bearer token: the client must redact.
        echo_token_in_errors: true,
        // `Prefer: odata.continue-on-error` ignored: a `$batch` stops at
        // its first failed changeset and leaves the rest unanswered.
        honour_continue_on_error: false,
        // `Prefer: return=representation` ignored: every accepted PATCH
        // answers 204, so only a read after it shows what D365 holds.
        honour_return_representation: false,
        // Validation failures as current releases send them (400), which
        // a client must not mistake for a malformed request it can fix.
        validation_status: 400,
        // One order per number whatever its case: objects differing only
        // in case collide, as in F&O's collation.
        case_sensitive_order_numbers: false,
        ..faults
    }
}
