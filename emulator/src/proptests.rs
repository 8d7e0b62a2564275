//! Property tests of the emulator's parsers of what clients send: the key
//! path, the `$batch` multipart body and client assertions (JWTs). They must answer (Ok or a 4xx
//! error) for any input, never panic: a panic in a handler drops the
//! connection and hides the real answer from the operator under test.
//! `make test` runs the default case count; `make fuzz` runs them long
//! (PROPTEST_CASES). Failures are kept in `proptest-regressions/`.

use proptest::prelude::*;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::{Resource, parse_key, parse_resource};
use crate::multipart::{boundary, parse_request, split};

/// Pieces a multipart body is made of, mixed with arbitrary bytes, so the
/// generated bodies reach past "no boundary found" into the part, header
/// and nested-changeset code.
fn multipart_body(b: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(format!("--{b}\r\n").into_bytes()),
        Just(format!("--{b}--").into_bytes()),
        Just(format!("\n--{b}").into_bytes()),
        Just(b"Content-Type: multipart/mixed; boundary=cs\r\n".to_vec()),
        Just(b"--cs\r\n".to_vec()),
        Just(b"--cs--\r\n".to_vec()),
        Just(b"Content-Type: application/http\r\nContent-ID: 1\r\n".to_vec()),
        Just(
            b"PATCH SalesOrderHeadersV2(dataAreaId='a',SalesOrderNumber='b') HTTP/1.1\r\n".to_vec()
        ),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"--".to_vec()),
        any::<Vec<u8>>(),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// Splits like the `$batch` handler does: the outer parts, then each
/// changeset's inner parts, then every leaf as an HTTP request.
fn read_batch(content_type: &str, body: &[u8]) -> usize {
    let Some(b) = boundary(content_type) else {
        return 0;
    };
    let Ok(parts) = split(body, &b) else {
        return 0;
    };
    let mut leaves = 0;
    for p in parts {
        let inner = match p.header("Content-Type").and_then(boundary) {
            Some(cb) => split(&p.body, &cb).unwrap_or_default(),
            None => vec![p],
        };
        for leaf in inner {
            let _ = parse_request(&leaf.body);
            leaves += 1;
        }
    }
    leaves
}

/// JSON-ish text of JWT headers and claims: the members the emulator reads,
/// with values of every type, mixed with arbitrary text.
fn jose_json() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just(",".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        prop::sample::select(vec![
            "\"alg\":",
            "\"kid\":",
            "\"x5t\":",
            "\"x5t#S256\":",
            "\"iss\":",
            "\"sub\":",
            "\"aud\":",
            "\"exp\":",
            "\"nbf\":",
            "\"iat\":",
            "\"jti\":",
            "\"ES256\"",
            "\"RS256\"",
            "null",
            "true",
            "1e308",
            "-1",
            "1.5",
            "\"a\"",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

/// Assertion checks that follow parsing, on whatever parsed: none may panic.
fn check_parsed(token: &str) {
    let Ok(jwt) = crate::jwt::parse(token) else {
        return;
    };
    let _ = jwt.claims.check_times(crate::jwt::now_secs());
    let _ = jwt.claims.aud.joined();
    let jwk = crate::oidc::Jwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: jwt.header.kid.clone(),
        y: jwt.header.x5t.clone(),
        ..Default::default()
    };
    let _ = crate::oidc::verify(&jwk, &jwt.header.alg, jwt.signing_input, &jwt.signature);
    let _ = crate::certcred::verify(&[], &jwt.claims.sub, &jwt, &[], 0.0);
}

proptest! {
    #[test]
    fn jwt_arbitrary_text_never_panics(raw in any::<String>()) {
        check_parsed(&raw);
    }

    /// Three base64url parts of JSON-ish text reach past the shape checks
    /// into the JSON and claim handling.
    #[test]
    fn jwt_parts_never_panic(h in jose_json(), c in jose_json(), sig in any::<Vec<u8>>()) {
        let b = |x: &[u8]| URL_SAFE_NO_PAD.encode(x);
        check_parsed(&format!("{}.{}.{}", b(h.as_bytes()), b(c.as_bytes()), b(&sig)));
    }

    /// Arbitrary key material never panics the verifier.
    #[test]
    fn jwk_verify_never_panics(kty in "(RSA|EC|x)", n in any::<String>(), e in any::<String>(),
                               alg in "(RS256|ES256|PS256|none)", sig in any::<Vec<u8>>()) {
        let jwk = crate::oidc::Jwk { kty, n: Some(n.clone()), e: Some(e.clone()), x: Some(n), y: Some(e),
                                     crv: Some("P-256".into()), ..Default::default() };
        prop_assert!(!crate::oidc::verify(&jwk, &alg, b"input", &sig));
    }

    #[test]
    fn key_path_never_panics(raw in any::<String>()) {
        let _ = parse_resource(&raw);
    }

    /// Arbitrary text inside the key parentheses, biased towards the
    /// grammar's own characters so the quote and comma paths are reached.
    #[test]
    fn key_grammar_never_panics(inner in "(dataAreaId|SalesOrderNumber|[='(),%]|''|[a-zA-Z0-9 ]|\\PC){0,40}") {
        let _ = parse_key(&inner);
        let _ = parse_resource(&format!("SalesOrderHeadersV2({inner})"));
    }

    /// F&O's routing decodes the path before matching a route
    /// [field report]: a key value whose `/` is encoded only once splits
    /// the path, whatever surrounds it, and matches no route.
    #[test]
    fn a_once_encoded_slash_never_reaches_a_key(before in any::<String>(), after in any::<String>()) {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let value = format!("{before}/{after}").replace('\'', "''");
        let once = utf8_percent_encode(&value, NON_ALPHANUMERIC);
        let path = format!("SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='{once}')");
        prop_assert!(matches!(parse_resource(&path), Err(crate::keys::KeyError::NoRoute(_))));
    }

    /// Quoted values written by the grammar's rule read back unchanged, in
    /// either key order.
    #[test]
    fn quoted_key_values_read_back(area in any::<String>(), number in any::<String>()) {
        let q = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let want = (area.clone(), number.clone());
        prop_assert_eq!(parse_key(&format!("dataAreaId={},SalesOrderNumber={}", q(&area), q(&number))), Ok(want.clone()));
        prop_assert_eq!(parse_key(&format!("SalesOrderNumber={},dataAreaId={}", q(&number), q(&area))), Ok(want));
    }

    #[test]
    fn content_type_never_panics(ct in any::<String>()) {
        if let Some(b) = boundary(&ct) {
            prop_assert!(ct.contains(b.as_str()));
        }
    }

    #[test]
    fn batch_body_never_panics(body in multipart_body("b1")) {
        let _ = read_batch("multipart/mixed; boundary=b1", &body);
    }

    #[test]
    fn batch_arbitrary_bytes_never_panic(ct in any::<String>(), body in any::<Vec<u8>>()) {
        let _ = read_batch(&ct, &body);
    }

    #[test]
    fn inner_request_never_panics(raw in any::<Vec<u8>>()) {
        if let Ok(req) = parse_request(&raw) {
            prop_assert!(!req.method.is_empty() && !req.target.is_empty());
        }
    }
}

/// A well-formed body with one changeset of two requests and one GET
/// yields three leaves: the generator's pieces are the real shape.
#[test]
fn read_batch_counts_leaves_of_a_real_body() {
    let body = b"--b1\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n\
--cs\r\nContent-Type: application/http\r\n\r\nPATCH x HTTP/1.1\r\n\r\n{}\r\n\
--cs\r\nContent-Type: application/http\r\n\r\nPATCH y HTTP/1.1\r\n\r\n{}\r\n\
--cs--\r\n\
--b1\r\nContent-Type: application/http\r\n\r\nGET z HTTP/1.1\r\n\r\n\r\n\
--b1--\r\n";
    assert_eq!(read_batch("multipart/mixed; boundary=b1", body), 3);
    assert_eq!(
        parse_resource("SalesOrderHeadersV2(dataAreaId='a',SalesOrderNumber='b')"),
        Ok(Resource::Entity("a".into(), "b".into()))
    );
}
