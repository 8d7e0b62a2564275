//! The read side of an entity, beside `write.rs`: visibility and 404 for a
//! GET by key, and the JSON answers that carry one entity. `handlers` and
//! `batch` both answer from here, so neither needs the other for reads.

use crate::entity::{ENTITY_SET, Order};
use crate::odata::ODataError;
use crate::query::Query;
use crate::state::State;
use crate::store::find;

/// `@odata.context` of an answer [doc]: the set, the `$select` list if
/// any, and `/$entity` when the answer is one entity.
pub fn context(base: &str, select: Option<&[String]>, entity: bool) -> String {
    let sel = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    let suffix = if entity { "/$entity" } else { "" };
    format!("{base}/data/$metadata#{ENTITY_SET}{sel}{suffix}")
}

/// Serialized entity and its ETag, or 404 when absent or in another
/// company without `cross-company=true` [doc].
pub fn read_entity(
    state: &State,
    area: &str,
    number: &str,
    q: &Query,
) -> Result<(Vec<u8>, String), ODataError> {
    if !state.visible(area, q.cross_company) {
        return Err(ODataError::entity_not_found(area, number));
    }
    let select = q.select.as_deref();
    let ctx = context(&q.base, select, true);
    let table = state.store.read();
    let exact = state.faults().case_sensitive_order_numbers;
    let order = find(&table, area, number, exact)
        .ok_or_else(|| ODataError::entity_not_found(area, number))?;
    let faults = state.faults();
    let dates = &faults.date_only_fields;
    let view = order.view(select, Some(&ctx)).dated(dates);
    let body = serde_json::to_vec(&view).unwrap_or_default();
    Ok((body, order.etag.clone()))
}

/// Body of a PATCH answer that carries the entity [spec]. It goes through
/// a `serde_json::Map`, so its keys come out sorted, as PATCH answers
/// always have; GET answers stream in the type's field order.
/// `dates` are the `dateOnlyFields`, shown as dates.
pub fn patched_body(order: &Order, context: &str, dates: &[String]) -> Vec<u8> {
    let view = order.view(None, Some(context)).dated(dates);
    let entity = serde_json::to_value(view).unwrap_or_default();
    serde_json::to_vec(&entity).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_names_select_and_entity() {
        let sel = [
            "SalesOrderNumber".to_string(),
            "SalesOrderStatus".to_string(),
        ];
        assert_eq!(
            context("http://h", Some(&sel), true),
            "http://h/data/$metadata#SalesOrderHeadersV2(SalesOrderNumber,SalesOrderStatus)/$entity"
        );
        assert_eq!(
            context("http://h", None, false),
            "http://h/data/$metadata#SalesOrderHeadersV2"
        );
    }

    /// Pins the bytes: PATCH answers have sorted keys, GETs the type's order.
    #[test]
    fn patched_body_keys_sorted_get_body_in_field_order() {
        let seed = json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-1", "Zz": 1, "Aa": 2});
        let mut o = Order::from_json(&seed).unwrap();
        o.etag = "W/\"e\"".into();
        let head = r#"{"@odata.context":"ctx","@odata.etag":"W/\"e\"","#;
        let patched = String::from_utf8(patched_body(&o, "ctx", &[])).unwrap();
        assert!(
            patched.starts_with(&format!(r#"{head}"Aa":2,"ConfirmedReceiptDate":"#)),
            "{patched}"
        );
        assert!(
            patched.ends_with(r#""Zz":1,"dataAreaId":"usmf"}"#),
            "{patched}"
        );
        let get = serde_json::to_string(&o.view(None, Some("ctx"))).unwrap();
        assert!(
            get.starts_with(&format!(
                r#"{head}"dataAreaId":"usmf","SalesOrderNumber":"SO-1","#
            )),
            "{get}"
        );
        assert!(get.ends_with(r#""FixedExchangeRate":0.0,"Aa":2,"Zz":1}"#));
    }
}
