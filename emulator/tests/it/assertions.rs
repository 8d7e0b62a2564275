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

const BAD_SIGNATURE: &str = "AADSTS700027: Client assertion contains an invalid signature";
const NOT_REGISTERED: &str = "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered";

/// Each defect of the claims alone is refused with its code.
#[tokio::test]
async fn certificate_assertion_claim_refusals() {
    let (emu, http) = start().await;
    let key = Key::rsa_from_pem(KEY);
    let aud = endpoint(&emu);
    let with = |k: &str, v: Value| {
        let mut c = claims(APP, &aud);
        c[k] = v;
        key.sign(&rs256(CERT_X5T), &c)
    };
    let entra = json!("https://login.microsoftonline.com/x/oauth2/v2.0/token");
    let cases = vec![
        ("wrong aud", APP, with("aud", entra), "AADSTS50012"),
        (
            "two aud",
            APP,
            with("aud", json!([aud, "x"])),
            "AADSTS5002741",
        ),
        (
            "expired",
            APP,
            with("exp", json!(now_plus(-60))),
            "AADSTS700024",
        ),
        (
            "not yet valid",
            APP,
            with("nbf", json!(now_plus(3600))),
            "AADSTS700024",
        ),
        (
            "iss another client",
            APP,
            with("iss", json!(DEFAULT_CLIENT_ID)),
            "AADSTS50048",
        ),
        (
            "sub differs from iss",
            APP,
            with("sub", json!("someone")),
            "AADSTS50048",
        ),
        ("no jti", APP, with("jti", Value::Null), "AADSTS50027"),
        ("not a JWT", APP, "a.b".to_string(), "AADSTS50027"),
    ];
    expect_refusals(&http, &emu, cases).await;
    let other = key.sign(&rs256(CERT_X5T), &claims(DEFAULT_CLIENT_ID, &aud));
    expect_refusals(
        &http,
        &emu,
        vec![("iss = sub = other client", APP, other, "AADSTS700021")],
    )
    .await;
    assert_eq!(emu.token_grants(), []);
}

/// Each defect of the key or client alone is refused with its code.
#[tokio::test]
async fn certificate_assertion_key_refusals() {
    let (emu, http) = start().await;
    let (key, other_key) = (Key::rsa_from_pem(KEY), Key::rsa_from_pem(OTHER_KEY));
    let aud = endpoint(&emu);
    let good = claims(APP, &aud);
    let unknown = "33333333-3333-3333-3333-333333333333";
    let cases = vec![
        (
            "tampered signature",
            APP,
            tamper(&key.sign(&rs256(CERT_X5T), &good)),
            BAD_SIGNATURE,
        ),
        (
            "unregistered certificate",
            APP,
            other_key.sign(&rs256(&thumbprints(OTHER_CERT).0), &good),
            NOT_REGISTERED,
        ),
        (
            "registered thumbprint, other key",
            APP,
            other_key.sign(&rs256(CERT_X5T), &good),
            BAD_SIGNATURE,
        ),
        (
            "certificate of another client",
            DEFAULT_CLIENT_ID,
            key.sign(&rs256(CERT_X5T), &claims(DEFAULT_CLIENT_ID, &aud)),
            NOT_REGISTERED,
        ),
        (
            "unknown client",
            unknown,
            key.sign(&rs256(CERT_X5T), &claims(unknown, &aud)),
            "AADSTS700016",
        ),
        (
            "no thumbprint",
            APP,
            key.sign(&json!({"alg": "RS256"}), &good),
            "AADSTS70021",
        ),
    ];
    expect_refusals(&http, &emu, cases).await;
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
