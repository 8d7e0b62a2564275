//! Why D365 refuses a PATCH of a visible order: privileges (403, or the
//! [field report] 409), a missing or stale `If-Match` [obs][spec], a
//! read-only field or a final status (write exceptions [obs]), and an
//! `Edm.Date` field sent as a DateTimeOffset [spec].

use serde_json::{Map, Value};

use crate::config::Faults;
use crate::entity::{ENTITY_SET, Order, if_match_matches};
use crate::odata::{
    CONCURRENCY_EXCEPTION, ODataError, PROTOCOL_EXCEPTION, SECURITY_EXCEPTION, WRITE_EXCEPTION,
};
use crate::write::{MODIFIED_BY_ANOTHER_USER, PatchOp};

/// Why D365 would refuse this PATCH of a visible order with valid fields:
/// no write privilege, a missing or stale `If-Match`, or leaving a final
/// status; `None` when it goes through.
pub(crate) fn refusal(
    faults: &Faults,
    current: &Order,
    op: &PatchOp<'_>,
    fields: &Map<String, Value>,
) -> Option<ODataError> {
    if faults
        .read_only_companies
        .iter()
        .any(|c| c.eq_ignore_ascii_case(current.area()))
    {
        if faults.forbidden_as_conflict {
            // [field report] a missing privilege can surface as the
            // optimistic-concurrency 409 although nobody wrote the record.
            return Some(ODataError::new(
                409,
                MODIFIED_BY_ANOTHER_USER.to_string(),
                CONCURRENCY_EXCEPTION,
            ));
        }
        return Some(ODataError::new(
            403,
            format!(
                "Access denied: the user does not have the privilege to update '{ENTITY_SET}' in company '{}'.",
                current.area()
            ),
            SECURITY_EXCEPTION,
        ));
    }
    match op.if_match {
        None if faults.require_if_match => {
            let status = faults.missing_if_match_status();
            let msg = if status == 409 {
                MODIFIED_BY_ANOTHER_USER.to_string()
            } else {
                "This operation requires an If-Match header with the entity's ETag.".to_string()
            };
            return Some(ODataError::new(status, msg, CONCURRENCY_EXCEPTION));
        }
        Some(h) if !if_match_matches(h, &current.etag) => {
            let status = faults.conflict_status();
            let msg = if status == 409 {
                MODIFIED_BY_ANOTHER_USER.to_string()
            } else {
                format!(
                    "The ETag '{h}' does not match the current ETag of the record; {MODIFIED_BY_ANOTHER_USER}"
                )
            };
            return Some(ODataError::new(status, msg, CONCURRENCY_EXCEPTION));
        }
        _ => {}
    }
    if let Some(field) = fields.keys().find(|f| faults.is_read_only(f)) {
        // [obs] a write D365's validation refuses: 400, write exception.
        return Some(ODataError::new(
            400,
            format!(
                "Write failed for table row of type 'SalesOrderHeaderV2Entity'. Infolog: Error: Field '{field}' in data entity 'SalesOrderHeaderV2' cannot be edited.; Update has been canceled."
            ),
            WRITE_EXCEPTION,
        ));
    }
    if let Some(Value::String(to)) = fields.get("SalesOrderStatus") {
        let from = current.status();
        let is_final = faults
            .final_statuses
            .iter()
            .any(|s| s.eq_ignore_ascii_case(from));
        if is_final && !to.eq_ignore_ascii_case(from) {
            return Some(ODataError::new(
                faults.validation_status(),
                format!(
                    "Write failed for table row of type 'SalesOrderHeaderV2Entity'. Infolog: Error: Sales order {} cannot be changed from status {from} to {to}.; Update has been canceled.",
                    current.number()
                ),
                WRITE_EXCEPTION,
            ));
        }
    }
    None
}

/// The `dateOnlyFields` of a PATCH body taken out and checked: each must
/// be a plain `YYYY-MM-DD`, as an `Edm.Date` is [spec]; a DateTimeOffset is
/// refused 400 as a third-party OData v4 server refuses it. The rest goes
/// through the entity's own validation.
pub(crate) fn split_dates(
    faults: &Faults,
    body: &mut Map<String, Value>,
) -> Result<Map<String, Value>, ODataError> {
    let names: Vec<String> = body
        .keys()
        .filter(|k| faults.is_date_only(k) && crate::entity::field_index(k).is_some())
        .cloned()
        .collect();
    let mut dates = Map::new();
    for name in names {
        let value = body.remove(&name).unwrap_or_default();
        let text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let valid = text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok();
        if !valid {
            return Err(ODataError::new(
                400,
                format!(
                    "Value {text} is not a valid Date (property '{name}' is of type 'Edm.Date')."
                ),
                PROTOCOL_EXCEPTION,
            ));
        }
        dates.insert(name, Value::String(text));
    }
    Ok(dates)
}
