//! Property tests of the client's parsers of what D365 (or anything in
//! between) answers: ETags, error bodies, `Retry-After`, `$batch`
//! multipart; and of key printing against the emulator's key parsing.
//! Whatever arrives, the operator must get a value or an error, never a
//! panic (one panic ends every reconcile of the process). `make test` runs
//! the default case count; `make fuzz` runs them long (PROPTEST_CASES).
//! Failures are kept in `proptest-regressions/`.

use d365_emulator::{ENTITY_SET, Resource, parse_resource};
use proptest::prelude::*;
use reqwest::header::{ETAG, HeaderMap, HeaderValue, RETRY_AFTER};

use super::batch::{by_content_id, parse as parse_batch};
use super::error::parse_retry_after;
use super::metadata::parse_capabilities;
use super::{D365Error, ETag, MAX_RETRY_AFTER, ODataErrorDetails, OrderKey, ResponseContext};

/// A header map holding `value` under `name`, when those bytes may be a
/// header value at all (the HTTP stack refuses the others before us).
fn headers_with(name: reqwest::header::HeaderName, value: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(value) {
        h.insert(name, v);
    }
    h
}

/// Bytes shaped like a batch answer (its delimiters, headers, status
/// lines) mixed with arbitrary bytes, so the cases reach the part and
/// status-line code instead of stopping at "no boundary".
fn batch_answer() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"--batchresponse_1\r\n".to_vec()),
        Just(b"--batchresponse_1--\r\n".to_vec()),
        Just(b"Content-Type: multipart/mixed; boundary=changesetresponse_1\r\n".to_vec()),
        Just(b"--changesetresponse_1\r\n".to_vec()),
        Just(b"--changesetresponse_1--\r\n".to_vec()),
        Just(b"Content-Type: application/http\r\nContent-ID: 1\r\n".to_vec()),
        Just(b"HTTP/1.1 204 No Content\r\n".to_vec()),
        Just(b"HTTP/1.1 412 Precondition Failed\r\nETag: W/\"x\"\r\n".to_vec()),
        Just(b"HTTP/1.1 99999999999999999999 x\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"--".to_vec()),
        any::<Vec<u8>>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// D365's error document with arbitrary strings (or nulls) in its fields.
fn error_document() -> impl Strategy<Value = (serde_json::Value, Option<String>, Option<String>)> {
    let field = prop::option::of(any::<String>());
    (field.clone(), field.clone(), field.clone(), field).prop_map(|(code, msg, inner, kind)| {
        let doc = serde_json::json!({"error": {"code": code, "message": msg.clone(),
            "innererror": {"message": inner.clone(), "type": kind}}});
        (doc, msg, inner)
    })
}

/// CSDL pieces (the tags and annotations the scanner acts on) mixed with
/// arbitrary text, so the cases reach its states, not only the XML errors.
fn csdl_document() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just("<Schema Namespace=\"N\" Alias=\"A\">".to_owned()),
        Just("<edmx:Include Namespace=\"Org.OData.Core.V1\" Alias=\"Core\"/>".to_owned()),
        Just("<EntityType Name=\"T\">".to_owned()),
        Just("</EntityType>".to_owned()),
        Just("<Key><PropertyRef Name=\"K\"/></Key>".to_owned()),
        Just("<Property Name=\"S\" Type=\"Edm.Date\">".to_owned()),
        Just("</Property>".to_owned()),
        Just("<Annotation Term=\"Core.Permissions\"><EnumMember>".to_owned()),
        Just(
            "<Annotation Term=\"Microsoft.Dynamics.OData.Core.V1.AllowEdit\" Bool=\"false\"/>"
                .to_owned()
        ),
        Just("</EnumMember></Annotation>".to_owned()),
        Just("<EntitySet Name=\"E\" EntityType=\"A.T\">".to_owned()),
        Just("<PropertyValue Property=\"Updatable\" Bool=\"false\"/>".to_owned()),
        Just("</EntitySet>".to_owned()),
        any::<String>(),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes())
}

proptest! {
    /// What the client prints, the emulator (D365's stand-in) reads back
    /// as the same company and order number, after URL parsing as reqwest
    /// does it.
    #[test]
    fn key_round_trips_through_the_emulator(area in any::<String>(), number in any::<String>()) {
        let segment = OrderKey::new(area.clone(), number.clone()).path_segment(ENTITY_SET);
        let url = url::Url::parse(&format!("https://d365.example/data/{segment}")).unwrap();
        let raw = url.path().strip_prefix("/data/").unwrap();
        prop_assert_eq!(parse_resource(raw), Ok(Resource::Entity(area, number)));
        prop_assert_eq!(url.query(), None);
    }

    #[test]
    fn etag_parse_never_panics(raw in any::<String>()) {
        if let Some(tag) = ETag::parse(&raw) {
            // Kept verbatim (trimmed), and what is kept parses again.
            prop_assert_eq!(tag.as_str(), raw.trim());
            prop_assert_eq!(ETag::parse(tag.as_str()), Some(tag.clone()));
        }
    }

    /// Any quoted opaque value without quotes or control characters is a
    /// tag, weak or strong.
    #[test]
    fn etag_accepts_every_valid_opaque(inner in "[^\"\\p{Cc}]*", weak in any::<bool>()) {
        let raw = format!("{}\"{inner}\"", if weak { "W/" } else { "" });
        let tag = ETag::parse(&raw);
        prop_assert_eq!(tag.as_ref().map(ETag::as_str), Some(raw.as_str()));
        prop_assert_eq!(tag.map(|t| t.is_weak()), Some(weak));
    }

    #[test]
    fn etag_header_never_panics(value in any::<Vec<u8>>()) {
        let _ = ETag::from_response(None, &headers_with(ETAG, &value));
    }

    #[test]
    fn retry_after_never_panics_and_is_capped(value in any::<Vec<u8>>()) {
        if let Some(d) = parse_retry_after(&headers_with(RETRY_AFTER, &value)) {
            prop_assert!(d <= MAX_RETRY_AFTER);
        }
    }

    /// Delay-seconds of any size read as themselves, capped.
    #[test]
    fn retry_after_seconds(secs in any::<u64>()) {
        let got = parse_retry_after(&headers_with(RETRY_AFTER, secs.to_string().as_bytes()));
        prop_assert_eq!(got, Some(std::time::Duration::from_secs(secs).min(MAX_RETRY_AFTER)));
    }

    #[test]
    fn error_body_never_panics(status in 0u16..1000, body in any::<Vec<u8>>(), retry in any::<Vec<u8>>()) {
        let _ = ODataErrorDetails::parse(&body).map(|d| (d.text().map(str::len), d.is_write_failure()));
        let ctx = ResponseContext { method: "PATCH", key: None, if_match: None };
        let err = D365Error::from_odata_response(&ctx, status, &headers_with(RETRY_AFTER, &retry), &body);
        let _ = (err.to_string(), err.is_transient(), err.retry_after());
    }

    /// The inner message wins over the outer one; either is trimmed and
    /// cut to at most 1024 characters.
    #[test]
    fn error_document_text((doc, msg, inner) in error_document()) {
        let details = ODataErrorDetails::parse(&serde_json::to_vec(&doc).unwrap());
        prop_assert!(details.is_some());
        let text = details.as_ref().and_then(ODataErrorDetails::text);
        fn useful(s: &Option<String>) -> Option<&str> {
            s.as_deref().map(str::trim).filter(|t| !t.is_empty())
        }
        match useful(&inner).or(useful(&msg)) {
            Some(want) => {
                let text = text.unwrap_or_default();
                prop_assert!(want.starts_with(text) && text.chars().count() == want.chars().count().min(1024));
            }
            None => prop_assert_eq!(text, None),
        }
    }

    #[test]
    fn batch_answer_never_panics(body in batch_answer()) {
        let ct = "multipart/mixed; boundary=batchresponse_1";
        if let Ok(parts) = parse_batch(ct, &body) {
            let _ = by_content_id(parts, &["1", "2"]);
        }
    }

    #[test]
    fn batch_arbitrary_bytes_never_panic(ct in any::<String>(), body in any::<Vec<u8>>()) {
        let _ = parse_batch(&ct, &body);
    }

    #[test]
    fn metadata_never_panics(doc in csdl_document(), raw in any::<Vec<u8>>()) {
        for bytes in [&doc, &raw] {
            let _ = parse_capabilities(bytes, "E", &["S", "K"]);
        }
    }
}
