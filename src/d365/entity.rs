//! What a read or a write gives back, shared by the single-request path
//! and the `$batch` path so both answer a PATCH the same way.

use reqwest::header::HeaderMap;
use serde_json::{Map, Value};

use super::ETag;

/// One entity as read: its version and its properties (OData annotations
/// such as `@odata.etag` and `@odata.context` removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub etag: ETag,
    pub fields: Map<String, Value>,
}

/// A successful PATCH. D365 answers 204 with no body [obs]; other OData
/// servers answer 200 with the entity. Callers must not rely on either: the
/// next reconcile reads afresh anyway.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    /// 204 (or a 2xx without a usable entity body); `etag` if the server
    /// sent one.
    NoContent { etag: Option<ETag> },
    /// 200 with the updated entity.
    Entity(Entity),
}

impl PatchOutcome {
    /// The new version, when the server told us.
    pub fn etag(&self) -> Option<&ETag> {
        match self {
            Self::NoContent { etag } => etag.as_ref(),
            Self::Entity(entity) => Some(&entity.etag),
        }
    }

    /// Reads a 2xx PATCH answer: a 200 with an entity (and a version) is
    /// that entity; anything else is `NoContent` with the `ETag` header.
    pub(crate) fn from_answer(
        status: u16,
        headers: &HeaderMap,
        json: Option<Map<String, Value>>,
    ) -> Self {
        let entity = json
            .filter(|_| status == 200)
            .and_then(|body| entity_from(body, headers));
        match entity {
            Some(entity) => Self::Entity(entity),
            None => Self::NoContent {
                etag: ETag::from_headers(headers),
            },
        }
    }
}

/// Splits a body into an [`Entity`]; `None` without an ETag.
pub(crate) fn entity_from(mut body: Map<String, Value>, headers: &HeaderMap) -> Option<Entity> {
    let etag = ETag::from_response(Some(&body), headers)?;
    body.retain(|name, _| !name.starts_with("@odata."));
    Some(Entity { etag, fields: body })
}

/// The body as a JSON object; `None` for anything else (empty, an array,
/// a multipart `$batch` answer).
pub(crate) fn json_object(body: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(body).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{ETAG, HeaderValue};
    use serde_json::json;

    #[test]
    fn entity_strips_annotations() {
        let body = json!({
            "@odata.context": "https://x/data/$metadata#SalesOrderHeadersV2/$entity",
            "@odata.etag": "W/\"v1\"",
            "SalesOrderStatus": "Backorder",
            "dataAreaId": "usmf"
        });
        let entity = entity_from(body.as_object().unwrap().clone(), &HeaderMap::new()).unwrap();
        assert_eq!(entity.etag.as_str(), "W/\"v1\"");
        assert_eq!(
            entity.fields.keys().collect::<Vec<_>>(),
            ["SalesOrderStatus", "dataAreaId"]
        );
        let no_etag = json!({"A": 1});
        assert!(entity_from(no_etag.as_object().unwrap().clone(), &HeaderMap::new()).is_none());
    }

    #[test]
    fn patch_outcome_is_the_entity_only_for_a_200_with_one() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("W/\"h\""));
        let body = json_object(br#"{"@odata.etag":"W/\"b\"","A":1}"#);
        let got = PatchOutcome::from_answer(200, &headers, body.clone());
        assert!(
            matches!(&got, PatchOutcome::Entity(e) if e.fields["A"] == 1),
            "{got:?}"
        );
        assert_eq!(got.etag().map(ETag::as_str), Some("W/\"b\""));
        for (status, body) in [(204, body), (200, None)] {
            let got = PatchOutcome::from_answer(status, &headers, body);
            assert_eq!(got.etag().map(ETag::as_str), Some("W/\"h\""));
            assert!(matches!(got, PatchOutcome::NoContent { .. }), "{got:?}");
        }
        assert!(json_object(b"[1]").is_none() && json_object(b"").is_none());
    }
}
