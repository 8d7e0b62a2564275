use super::*;
use reqwest::header::HeaderValue;
use serde_json::json;

const WRITE_FAILED: &str = "Write failed for table row of type 'SalesOrderHeaderV2Entity'. Infolog: Error: The order is invoiced.";

fn d365_body(outer: &str, inner: Option<(&str, &str)>) -> Vec<u8> {
    let mut error = json!({"code": "", "message": outer});
    if let Some((message, kind)) = inner {
        error["innererror"] = json!({
            "message": message,
            "type": kind,
            "stacktrace": "   at Microsoft.Dynamics...",
            "internalexception": {"message": "x"}
        });
    }
    serde_json::to_vec(&json!({ "error": error })).unwrap()
}

fn map(status: u16, headers: &HeaderMap, body: &[u8]) -> D365Error {
    let key = OrderKey::new("USMF", "SO-1");
    let etag = ETag::parse("W/\"old\"").unwrap();
    let ctx = ResponseContext {
        method: "PATCH",
        key: Some(&key),
        if_match: Some(&etag),
    };
    D365Error::from_odata_response(&ctx, status, headers, body)
}

#[test]
fn parses_the_d365_error_body() {
    let body = d365_body(
        "An error has occurred.",
        Some((
            WRITE_FAILED,
            "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
        )),
    );
    let details = ODataErrorDetails::parse(&body).unwrap();
    assert_eq!(details.code, None, "empty code is dropped");
    assert_eq!(details.message.as_deref(), Some("An error has occurred."));
    assert_eq!(details.text(), Some(WRITE_FAILED));
    assert!(details.is_write_failure());

    let outer_only = d365_body("The record has been modified by another user.", None);
    let details = ODataErrorDetails::parse(&outer_only).unwrap();
    assert_eq!(
        details.text(),
        Some("The record has been modified by another user.")
    );
    assert!(!details.is_write_failure());

    assert_eq!(ODataErrorDetails::parse(b"<html>Bad gateway</html>"), None);
    assert_eq!(ODataErrorDetails::parse(b""), None);
}

#[test]
fn empty_inner_message_falls_back_to_outer() {
    let body =
        br#"{"error":{"code":"x","message":"outer","innererror":{"message":"  ","type":"T"}}}"#;
    assert_eq!(
        ODataErrorDetails::parse(body).unwrap().text(),
        Some("outer")
    );
}

#[test]
fn write_failure_rule() {
    let table = [
        (Some((WRITE_FAILED, "Other")), true),
        (Some(("boom", "X.AxODataWriteException")), true),
        (Some(("boom", "X.ValidationException")), true),
        (Some(("Validation of field X failed", "T")), true),
        (
            Some(("Object reference not set", "System.NullReferenceException")),
            false,
        ),
        (None, false),
    ];
    for (inner, want) in table {
        let body = d365_body("An error has occurred.", inner);
        assert_eq!(
            ODataErrorDetails::parse(&body).unwrap().is_write_failure(),
            want,
            "{inner:?}"
        );
    }
}

#[test]
fn status_to_error_table() {
    let write_failed = d365_body(
        "An error has occurred.",
        Some((
            WRITE_FAILED,
            "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
        )),
    );
    let crash = d365_body(
        "An error has occurred.",
        Some(("Object reference not set", "System.NullReferenceException")),
    );
    let plain = d365_body("nope", None);
    let none = HeaderMap::new();
    let cases: [(u16, &[u8], &str); 16] = [
        (409, &plain, "Conflict"),
        (412, &plain, "Conflict"),
        (428, &plain, "PreconditionRequired"),
        (429, &plain, "Throttled"),
        (401, &plain, "Unauthorized"),
        (403, &plain, "Forbidden"),
        (404, &plain, "NotFound"),
        (410, &plain, "NotFound"),
        (400, &plain, "Rejected"),
        (422, &plain, "Rejected"),
        (405, b"", "Rejected"),
        (500, &write_failed, "Rejected"),
        (500, &crash, "Unavailable"),
        (502, b"Bad Gateway", "Unavailable"),
        (503, &plain, "Unavailable"),
        (408, b"", "Unavailable"),
    ];
    for (status, body, want) in cases {
        let err = map(status, &none, body);
        let got = format!("{err:?}");
        assert!(got.starts_with(want), "{status}: {got}");
        let want_code = if status == 410 { 404 } else { status };
        assert_eq!(err.status_code(), Some(want_code), "{status}");
    }
}

#[test]
fn conflict_carries_sent_etag_key_and_d365_text() {
    let body = d365_body("The record has been modified by another user.", None);
    let err = map(412, &HeaderMap::new(), &body);
    assert!(err.is_conflict());
    assert!(err.is_transient());
    let D365Error::Conflict {
        status,
        sent_etag,
        message,
    } = err
    else {
        unreachable!()
    };
    assert_eq!(status, 412);
    assert_eq!(sent_etag, "W/\"old\"");
    assert!(message.contains("The record has been modified by another user."));
    assert!(message.contains("USMF/SO-1"), "{message}");
    assert!(message.contains("W/\"old\""), "{message}");
}

#[test]
fn rejected_500_carries_inner_message() {
    let body = d365_body(
        "An error has occurred.",
        Some((
            WRITE_FAILED,
            "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
        )),
    );
    let err = map(500, &HeaderMap::new(), &body);
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("The order is invoiced."), "{text}");
    assert!(!text.contains("An error has occurred."), "{text}");
}

#[test]
fn throttled_uses_retry_after_or_30s() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
    let err = map(429, &headers, b"");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let err = map(429, &HeaderMap::new(), b"");
    assert_eq!(err.retry_after(), Some(DEFAULT_RETRY_AFTER));
    assert_eq!(map(503, &headers, b"").retry_after(), None);
}

#[test]
fn retry_after_forms() {
    let parse = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        parse_retry_after(&h)
    };
    assert_eq!(parse("0"), Some(Duration::ZERO));
    assert_eq!(parse(" 12 "), Some(Duration::from_secs(12)));
    assert_eq!(parse("1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(parse("999999"), Some(MAX_RETRY_AFTER));
    assert_eq!(parse("-3"), None);
    // Outside input at the edges of the number types: capped or refused,
    // never a panic.
    assert_eq!(parse("18446744073709551615"), Some(MAX_RETRY_AFTER));
    assert_eq!(parse("18446744073709551616"), None);
    assert_eq!(parse("1e300"), None);
    assert_eq!(parse("inf"), None);
    assert_eq!(parse("NaN"), None);
    assert_eq!(
        parse("Wed, 01 Jan 9000 00:00:00 GMT"),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(parse("Fri, 31 Dec 9999 23:59:59 GMT"), None);
    assert_eq!(parse("soon"), None);
    assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
    let http_date =
        jiff::fmt::rfc2822::to_string(&future.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
    let got = parse(&http_date).unwrap();
    assert!(
        got > Duration::from_secs(100) && got <= Duration::from_secs(120),
        "{got:?}"
    );
}

#[test]
fn non_odata_body_uses_reason_and_text() {
    let err = map(502, &HeaderMap::new(), b"upstream connect error");
    assert!(
        err.to_string()
            .contains("Bad Gateway: upstream connect error"),
        "{err}"
    );
    let err = map(404, &HeaderMap::new(), b"");
    assert!(
        err.to_string().contains("Not Found [PATCH USMF/SO-1"),
        "{err}"
    );
}

#[test]
fn long_messages_are_truncated() {
    let long = "é".repeat(5000);
    let body = d365_body(&long, None);
    let text = map(400, &HeaderMap::new(), &body).to_string();
    assert!(text.chars().count() < 1200, "{}", text.len());
}

#[test]
fn a_redirect_names_its_location_without_the_query_and_is_not_transient() {
    let with = |location: Option<&str>| {
        let mut headers = HeaderMap::new();
        if let Some(l) = location {
            headers.insert(LOCATION, HeaderValue::from_str(l).unwrap());
        }
        headers
    };
    let cases = [
        (
            301,
            Some("https://new.example/data/X"),
            "https://new.example/data/X",
        ),
        (
            302,
            Some("https://login.example/a?code=s3cret#f"),
            "https://login.example/a?…",
        ),
        (307, Some("/data/X#frag"), "/data/X?…"),
        (308, None, "(no Location header)"),
    ];
    for (status, location, want) in cases {
        let err = map(status, &with(location), b"Moved");
        let D365Error::Redirected { location: got, .. } = &err else {
            panic!("{status}: {err:?}")
        };
        assert_eq!(got, want, "{status}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("D365 answered {status} redirecting to {want}")),
            "{text}"
        );
        assert!(
            text.contains("check the connection's url") && text.contains("PATCH USMF/SO-1"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(err.status_code(), Some(status));
        assert!(!err.is_transient());
    }
}

/// A 404 says which: a route (Web API shape, the url or entity set is
/// wrong, or a key mis-encoded), an order (OData shape), or neither.
#[test]
fn a_404_says_whether_the_route_or_the_order_is_missing() {
    let web_api = br#"{"Message":"No HTTP resource was found that matches the request URI 'https://h/data/X'."}"#;
    let route = map(404, &HeaderMap::new(), web_api).to_string();
    assert!(
        route.starts_with(
            "no such route (check the connection's url and entitySet): No HTTP resource was found"
        ),
        "{route}"
    );
    assert!(
        route.ends_with("[PATCH USMF/SO-1 → 404, If-Match W/\"old\"]"),
        "{route}"
    );
    let missing = d365_body(
        "An error has occurred.",
        Some((
            "No resources were found for SO-1.",
            "AxODataObjectNotFoundException",
        )),
    );
    let order = map(404, &HeaderMap::new(), &missing).to_string();
    assert!(
        order.starts_with("order not found: No resources were found"),
        "{order}"
    );
    let plain = map(404, &HeaderMap::new(), b"<html>gone</html>").to_string();
    assert!(plain.starts_with("not found: Not Found: <html>"), "{plain}");
    // An empty Message, or one beside an OData error, is not the Web API shape.
    for body in [&br#"{"Message":"  "}"#[..], &br#"{"Message":1}"#[..]] {
        let err = map(404, &HeaderMap::new(), body).to_string();
        assert!(err.starts_with("not found: "), "{err}");
    }
}

/// Business validation: 400 in current releases, 500 with a write
/// exception in older ones; both Rejected with D365's Infolog [obs].
#[test]
fn validation_failures_as_400_and_500_are_rejected() {
    let kind = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException";
    for status in [400, 500] {
        let body = d365_body("An error has occurred.", Some((WRITE_FAILED, kind)));
        match map(status, &HeaderMap::new(), &body) {
            D365Error::Rejected { status: s, message } => {
                assert_eq!(s, status);
                assert!(message.starts_with(WRITE_FAILED), "{message}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}
