//! Entity tags: the version token that makes a PATCH conditional.

use std::fmt;

use reqwest::header::{ETAG, HeaderMap};
use serde_json::{Map, Value};

/// The body annotation carrying an entity's version [obs].
pub const ODATA_ETAG: &str = "@odata.etag";

/// An entity tag as D365 sent it, e.g. `W/"JzEsNTYzNzE0NDU3Njsw"`.
///
/// Opaque on purpose: the value is sent back verbatim in `If-Match`, and
/// comparing two tags byte for byte is all a caller may do with it. D365's
/// tags are weak [obs]; strong ones are accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// Parses an entity-tag (`W/"…"` or `"…"`, RFC 9110 §8.8.3). Surrounding
    /// whitespace is trimmed; anything else — empty, unquoted, `*`, a list —
    /// is refused, because sending it as `If-Match` would not mean "exactly
    /// this version".
    pub fn parse(raw: &str) -> Option<Self> {
        let tag = raw.trim();
        let opaque = tag.strip_prefix("W/").unwrap_or(tag);
        let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('"') || tag.chars().any(|c| c.is_control()) {
            return None;
        }
        Some(Self(tag.to_owned()))
    }

    /// The tag from an entity body's `@odata.etag`, if present and valid.
    pub fn from_body(body: &Map<String, Value>) -> Option<Self> {
        body.get(ODATA_ETAG)?.as_str().and_then(Self::parse)
    }

    /// The tag from an `ETag` response header, if present and valid.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers.get(ETAG)?.to_str().ok().and_then(Self::parse)
    }

    /// Body first, header as fallback: the body's `@odata.etag` is what D365
    /// is known to send; an `ETag` header is [unverified].
    pub fn from_response(body: Option<&Map<String, Value>>, headers: &HeaderMap) -> Option<Self> {
        body.and_then(Self::from_body)
            .or_else(|| Self::from_headers(headers))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_weak(&self) -> bool {
        self.0.starts_with("W/")
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ETag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("not an entity tag: {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    #[test]
    fn parse_table() {
        let table: [(&str, Option<&str>); 11] = [
            (
                r#"W/"JzEsNTYzNzE0NDU3Njsw""#,
                Some(r#"W/"JzEsNTYzNzE0NDU3Njsw""#),
            ),
            (r#""abc""#, Some(r#""abc""#)),
            (r#"  W/"x"  "#, Some(r#"W/"x""#)),
            (r#"W/"""#, Some(r#"W/"""#)),
            ("", None),
            ("*", None),
            ("abc", None),
            (r#"W/abc"#, None),
            (r#""a"b""#, None),
            (r#""a", "b""#, None),
            ("\"a\nb\"", None),
        ];
        for (raw, want) in table {
            assert_eq!(ETag::parse(raw).as_ref().map(ETag::as_str), want, "{raw:?}");
        }
    }

    #[test]
    fn weak_and_display() {
        let weak = ETag::parse(r#"W/"x""#).unwrap();
        assert!(weak.is_weak());
        assert_eq!(weak.to_string(), r#"W/"x""#);
        assert!(!ETag::parse(r#""x""#).unwrap().is_weak());
        assert!("*".parse::<ETag>().is_err());
    }

    #[test]
    fn body_wins_over_header() {
        let body = json!({"@odata.etag": "W/\"body\"", "A": 1});
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("W/\"header\""));
        let body = body.as_object().unwrap();
        assert_eq!(
            ETag::from_response(Some(body), &headers).unwrap().as_str(),
            "W/\"body\""
        );
        let no_tag = json!({"A": 1});
        assert_eq!(
            ETag::from_response(Some(no_tag.as_object().unwrap()), &headers)
                .unwrap()
                .as_str(),
            "W/\"header\""
        );
        assert_eq!(ETag::from_response(None, &HeaderMap::new()), None);
        let not_string = json!({"@odata.etag": 5});
        assert_eq!(ETag::from_body(not_string.as_object().unwrap()), None);
    }
}
