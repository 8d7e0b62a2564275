//! Certificate credentials at the token endpoint: assertions signed with
//! the committed throwaway keys, verified against the registered
//! certificate (tests/fixtures/client-certificate).

use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Emulator, GrantKind,
    RegisteredCertificate, TokenGrant,
};
use serde_json::{Value, json};

use crate::common::seed_orders;
use crate::jws::*;

const CERT: &str = include_str!("../../../tests/fixtures/client-certificate/tls.crt");
const KEY: &str = include_str!("../../../tests/fixtures/client-certificate/tls.key");
const OTHER_CERT: &str =
    include_str!("../../../tests/fixtures/client-certificate/unregistered.crt");
const OTHER_KEY: &str = include_str!("../../../tests/fixtures/client-certificate/unregistered.key");
/// Thumbprints of tls.crt by `openssl x509 -outform der | openssl dgst`:
/// an independent check of the thumbprint the tests sign with.
const CERT_X5T: &str = "aBAyD01pecKtUaY-zniK51peZ7A";
const CERT_X5T_S256: &str = "vJQBIUaVIIzzX9dzTQ3qWdILkVE8-BRdtuV0cKIU9wM";
const APP: &str = "22222222-2222-2222-2222-222222222222";

async fn start() -> (Emulator, reqwest::Client) {
    let emu = Emulator::start(Config {
        orders: seed_orders(),
        client_certificates: vec![RegisteredCertificate {
            client_id: APP.into(),
            certificate_pem: CERT.into(),
        }],
        ..Config::default()
    })
    .await
    .unwrap();
    (emu, reqwest::Client::new())
}

fn endpoint(emu: &Emulator) -> String {
    format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", emu.url())
}

/// Claims Entra asks for [doc], valid for 10 minutes.
fn claims(client: &str, aud: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": aud, "jti": "j-1",
           "nbf": now_plus(-5), "iat": now_plus(-5), "exp": now_plus(600)})
}

fn rs256(x5t: &str) -> Value {
    json!({"alg": "RS256", "typ": "JWT", "x5t": x5t})
}

#[tokio::test]
async fn certificate_assertion_gets_a_working_token() {
    let (emu, http) = start().await;
    assert_eq!(thumbprints(CERT), (CERT_X5T.into(), CERT_X5T_S256.into()));
    let key = Key::rsa_from_pem(KEY);
    let jwt = key.sign(&rs256(CERT_X5T), &claims(APP, &endpoint(&emu)));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(data_status(&http, &emu, &v).await, 200);
    // PS256 with x5t#S256 [doc], and the audience in another case.
    let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": CERT_X5T_S256});
    let jwt = key.sign(&header, &claims(APP, &endpoint(&emu).to_uppercase()));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 200, "{v}");
    // The secret client still works, and each grant names its kind.
    let (s, _) = token_with(
        &http,
        &emu,
        &[
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(s, 200);
    let grant = |client_id: &str, kind| TokenGrant {
        client_id: client_id.into(),
        kind,
    };
    assert_eq!(
        emu.token_grants(),
        [
            grant(APP, GrantKind::Certificate),
            grant(APP, GrantKind::Certificate),
            grant(DEFAULT_CLIENT_ID, GrantKind::Secret),
        ]
    );
}

/// Each defect alone is refused with its code; no token is granted.
#[tokio::test]
async fn certificate_assertion_refusals() {
    let (emu, http) = start().await;
    let key = Key::rsa_from_pem(KEY);
    let aud = endpoint(&emu);
    let good = claims(APP, &aud);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "wrong aud",
            APP,
            key.sign(
                &rs256(CERT_X5T),
                &with(
                    "aud",
                    json!("https://login.microsoftonline.com/x/oauth2/v2.0/token"),
                ),
            ),
            401,
            "AADSTS50012",
        ),
        (
            "two aud values",
            APP,
            key.sign(&rs256(CERT_X5T), &with("aud", json!([aud, "other"]))),
            401,
            "AADSTS5002741",
        ),
        (
            "expired",
            APP,
            key.sign(&rs256(CERT_X5T), &with("exp", json!(now_plus(-60)))),
            401,
            "AADSTS700024",
        ),
        (
            "not yet valid",
            APP,
            key.sign(&rs256(CERT_X5T), &with("nbf", json!(now_plus(3600)))),
            401,
            "AADSTS700024",
        ),
        (
            "tampered signature",
            APP,
            tamper(&key.sign(&rs256(CERT_X5T), &good)),
            401,
            "AADSTS700027: Client assertion contains an invalid signature",
        ),
        (
            "unregistered certificate",
            APP,
            Key::rsa_from_pem(OTHER_KEY).sign(&rs256(&thumbprints(OTHER_CERT).0), &good),
            401,
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered",
        ),
        (
            "registered thumbprint, other key",
            APP,
            Key::rsa_from_pem(OTHER_KEY).sign(&rs256(CERT_X5T), &good),
            401,
            "AADSTS700027: Client assertion contains an invalid signature",
        ),
        (
            "certificate of another client",
            DEFAULT_CLIENT_ID,
            key.sign(&rs256(CERT_X5T), &claims(DEFAULT_CLIENT_ID, &aud)),
            401,
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered",
        ),
        (
            "unknown client",
            "33333333-3333-3333-3333-333333333333",
            key.sign(
                &rs256(CERT_X5T),
                &claims("33333333-3333-3333-3333-333333333333", &aud),
            ),
            400,
            "AADSTS700016",
        ),
        (
            "iss is another client",
            APP,
            key.sign(&rs256(CERT_X5T), &claims(DEFAULT_CLIENT_ID, &aud)),
            401,
            "AADSTS700021",
        ),
        (
            "sub differs from iss",
            APP,
            key.sign(&rs256(CERT_X5T), &with("sub", json!("someone"))),
            401,
            "AADSTS50048",
        ),
        (
            "no jti",
            APP,
            key.sign(&rs256(CERT_X5T), &with("jti", Value::Null)),
            400,
            "AADSTS50027",
        ),
        ("not a JWT", APP, "a.b".to_string(), 400, "AADSTS50027"),
    ];
    for (name, client, jwt, status, code) in cases {
        let (s, v) = assert_token(&http, &emu, client, &jwt).await;
        assert_eq!(s, status, "{name}: {v}");
        assert!(has_code(&v, code), "{name}: {v}");
        let error = match code {
            "AADSTS700016" => "unauthorized_client",
            "AADSTS50027" => "invalid_request",
            _ => "invalid_client",
        };
        assert_eq!(v["error"], error, "{name}");
    }
    assert_eq!(emu.token_grants(), []);
}

/// Entra takes one credential per request: a secret and an assertion
/// together, or an assertion of another type, are refused.
#[tokio::test]
async fn assertion_request_shape() {
    let (emu, http) = start().await;
    let jwt = Key::rsa_from_pem(KEY).sign(&rs256(CERT_X5T), &claims(APP, &endpoint(&emu)));
    let (s, v) = token_with(
        &http,
        &emu,
        &[
            ("client_id", APP),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (s, v) = token_with(
        &http,
        &emu,
        &[
            ("client_id", APP),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &jwt),
        ],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    // Over 16 KiB: malformed, whatever it holds.
    let big = format!("{jwt}{}", "A".repeat(16 * 1024));
    let (s, v) = assert_token(&http, &emu, APP, &big).await;
    assert_eq!(s, 400);
    assert!(description(&v).starts_with("AADSTS50027"), "{v}");
    // The good assertion alone still works.
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 200, "{v}");
}

/// A registered certificate that is not PEM fails the start, naming the client.
#[tokio::test]
async fn invalid_registered_certificate_fails_start() {
    let err = Emulator::start(Config {
        client_certificates: vec![RegisteredCertificate {
            client_id: APP.into(),
            certificate_pem: "not a certificate".into(),
        }],
        ..Config::default()
    })
    .await
    .err()
    .expect("start must fail");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains(APP), "{chain}");
}

/// A registered certificate past its notAfter no longer verifies
/// assertions, even with the right key [obs: "The key used is expired."].
#[tokio::test]
async fn expired_certificate_is_refused() {
    let signer = rcgen::KeyPair::from_pem_and_sign_algo(KEY, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["expired test client".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&signer).unwrap().pem();
    let emu = Emulator::start(Config {
        client_certificates: vec![RegisteredCertificate {
            client_id: APP.into(),
            certificate_pem: expired.clone(),
        }],
        ..Config::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let x5t = thumbprints(&expired).0;
    let jwt = Key::rsa_from_pem(KEY).sign(&rs256(&x5t), &claims(APP, &endpoint(&emu)));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        has_code(
            &v,
            "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired."
        ),
        "{v}"
    );
}
