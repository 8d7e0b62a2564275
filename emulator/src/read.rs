//! The read side of an entity, beside `write.rs`: visibility and 404 for a
//! GET by key, and the JSON answers that carry one entity. `handlers` and
//! `batch` both answer from here, so neither needs the other for reads.

use crate::entity::{ENTITY_SET, EntityView};
use crate::odata::ODataError;
use crate::query::Query;
use crate::state::State;
use crate::store::key;

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
    let order = table
        .get(&key(area, number))
        .ok_or_else(|| ODataError::entity_not_found(area, number))?;
    let view = EntityView {
        order,
        select,
        context: Some(&ctx),
    };
    let body = serde_json::to_vec(&view).unwrap_or_default();
    Ok((body, order.etag.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
