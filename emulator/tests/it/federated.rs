//! Federated credentials (workload identity) at the token endpoint, against
//! a fake OIDC issuer on loopback (plain http: the emulator allows it only
//! for loopback issuers) that publishes an EC P-256 and an RSA key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, DEFAULT_FEDERATED_AUDIENCE, Emulator, FederatedCredential,
    GrantKind, TokenGrant,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::common::seed_orders;
use crate::jws::*;

const APP: &str = "44444444-4444-4444-4444-444444444444";
const SUBJECT: &str = "system:serviceaccount:sales:sales-order-operator";
const RSA_KEY: &str = include_str!("../../../tests/fixtures/client-certificate/tls.key");

/// The fake issuer: its URL, published keys and JWKS fetch count.
struct Issuer {
    url: String,
    jwks: Mutex<Vec<Value>>,
    jwks_fetches: AtomicUsize,
}

async fn discovery(State(i): State<Arc<Issuer>>) -> Json<Value> {
    Json(json!({"issuer": i.url, "jwks_uri": format!("{}/openid/v1/jwks", i.url)}))
}

async fn jwks(State(i): State<Arc<Issuer>>) -> Json<Value> {
    i.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({"keys": *i.jwks.lock()}))
}

/// Serves `router` on a loopback port; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn start_issuer(keys: Vec<Value>) -> Arc<Issuer> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = Arc::new(Issuer {
        url: format!("http://{}", listener.local_addr().unwrap()),
        jwks: Mutex::new(keys),
        jwks_fetches: AtomicUsize::new(0),
    });
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .with_state(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    issuer
}

fn credential(issuer: &str) -> FederatedCredential {
    FederatedCredential {
        client_id: APP.into(),
        issuer: issuer.into(),
        subject: SUBJECT.into(),
        audience: DEFAULT_FEDERATED_AUDIENCE.into(),
    }
}

async fn start_emulator(credentials: Vec<FederatedCredential>) -> (Emulator, reqwest::Client) {
    let emu = Emulator::start(Config {
        orders: seed_orders(),
        federated_credentials: credentials,
        ..Config::default()
    })
    .await
    .unwrap();
    (emu, reqwest::Client::new())
}

/// A ServiceAccount token's claims, as a kube-apiserver issues them.
fn sa_claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": SUBJECT, "aud": [DEFAULT_FEDERATED_AUDIENCE],
           "iat": now_plus(-5), "nbf": now_plus(-5), "exp": now_plus(3600),
           "kubernetes.io": {"namespace": "sales", "serviceaccount": {"name": "sales-order-operator"}}})
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid})
}

#[tokio::test]
async fn federated_tokens_es256_and_rs256() {
    let ec = Key::ec_generate();
    let rsa = Key::rsa_from_pem(RSA_KEY);
    let issuer = start_issuer(vec![ec.jwk("ec-1"), rsa.jwk("rsa-1")]).await;
    let (emu, http) = start_emulator(vec![credential(&issuer.url)]).await;
    let jwt = ec.sign(&header("ES256", "ec-1"), &sa_claims(&issuer.url));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(data_status(&http, &emu, &v).await, 200);
    let jwt = rsa.sign(&header("RS256", "rsa-1"), &sa_claims(&issuer.url));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!(s, 200, "{v}");
    // The keys were fetched once and cached.
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1);
    let grant = TokenGrant {
        client_id: APP.into(),
        kind: GrantKind::Federated,
    };
    assert_eq!(emu.token_grants(), [grant.clone(), grant]);
    let over_http: Value = http
        .get(format!("{}/_emulator/token-grants", emu.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one = json!({"clientId": APP, "kind": "federated"});
    assert_eq!(over_http, json!([one, one]));
    // Reset forgets them, as it does the token request count.
    emu.reset();
    assert_eq!(emu.token_grants(), []);
}

const KEY_NOT_FOUND: &str = "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found.";
const BAD_SIGNATURE: &str = "AADSTS700027: Client assertion contains an invalid signature. [Reason - The provided signature";

#[tokio::test]
async fn federated_refusals() {
    let ec = Key::ec_generate();
    let issuer = start_issuer(vec![ec.jwk("ec-1")]).await;
    let (emu, http) = start_emulator(vec![credential(&issuer.url)]).await;
    let good = sa_claims(&issuer.url);
    let es = header("ES256", "ec-1");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        ec.sign(&es, &c)
    };
    let other_sa = json!("system:serviceaccount:sales:other");
    let cases = vec![
        ("wrong subject", APP, with("sub", other_sa), "AADSTS70021"),
        (
            "wrong audience",
            APP,
            with("aud", json!("api://other")),
            "AADSTS70021",
        ),
        (
            "wrong issuer",
            APP,
            with("iss", json!("https://elsewhere.example")),
            "AADSTS70021",
        ),
        (
            "subject case differs",
            APP,
            with("sub", json!(SUBJECT.to_uppercase())),
            "AADSTS70021",
        ),
        (
            "credential of another client",
            DEFAULT_CLIENT_ID,
            ec.sign(&es, &good),
            "AADSTS70021",
        ),
        (
            "unknown kid",
            APP,
            ec.sign(&header("ES256", "ec-9"), &good),
            KEY_NOT_FOUND,
        ),
        (
            "tampered signature",
            APP,
            tamper(&ec.sign(&es, &good)),
            BAD_SIGNATURE,
        ),
        (
            "other key, same kid",
            APP,
            Key::ec_generate().sign(&es, &good),
            BAD_SIGNATURE,
        ),
        (
            "alg not the key's",
            APP,
            ec.sign(&header("RS256", "ec-1"), &good),
            BAD_SIGNATURE,
        ),
        (
            "alg none",
            APP,
            ec.sign(&header("none", "ec-1"), &good),
            BAD_SIGNATURE,
        ),
        (
            "expired",
            APP,
            with("exp", json!(now_plus(-10))),
            "AADSTS700024",
        ),
        ("no exp", APP, with("exp", Value::Null), "AADSTS700024"),
    ];
    expect_refusals(&http, &emu, cases).await;
    assert_eq!(emu.token_grants(), []);
}

/// The 70021 message names what was presented, as Entra's does [obs].
#[tokio::test]
async fn no_matching_credential_names_the_assertion() {
    let ec = Key::ec_generate();
    let issuer = start_issuer(vec![ec.jwk("ec-1")]).await;
    let (emu, http) = start_emulator(vec![credential(&issuer.url)]).await;
    let mut claims = sa_claims(&issuer.url);
    claims["sub"] = json!("x");
    let (_, v) = assert_token(
        &http,
        &emu,
        APP,
        &ec.sign(&header("ES256", "ec-1"), &claims),
    )
    .await;
    assert_eq!(
        description(&v),
        format!(
            "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: 'x'. Assertion Audience: '{DEFAULT_FEDERATED_AUDIENCE}'.",
            issuer.url
        )
    );
    // Matching comes first: the issuer's keys were never fetched.
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 0);
}

/// A `kid` missing from the cached keys is fetched once more (the issuer
/// rotated), then found.
#[tokio::test]
async fn rotated_issuer_key_is_refetched_once() {
    let (old, new) = (Key::ec_generate(), Key::ec_generate());
    let issuer = start_issuer(vec![old.jwk("old")]).await;
    let (emu, http) = start_emulator(vec![credential(&issuer.url)]).await;
    let (s, _) = assert_token(
        &http,
        &emu,
        APP,
        &old.sign(&header("ES256", "old"), &sa_claims(&issuer.url)),
    )
    .await;
    assert_eq!(s, 200);
    let fetches = || issuer.jwks_fetches.load(Ordering::SeqCst);
    assert_eq!(fetches(), 1);
    let jwt = new.sign(&header("ES256", "new"), &sa_claims(&issuer.url));
    let (s, _) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!((s, fetches()), (401, 2), "unknown kid: one refetch");
    issuer.jwks.lock().push(new.jwk("new"));
    let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!((s, fetches()), (200, 3), "{v}");
    let (s, _) = assert_token(&http, &emu, APP, &jwt).await;
    assert_eq!((s, fetches()), (200, 3), "cached");
}

/// An issuer that is down, hangs, answers too much or is plain http off
/// loopback: an answer naming the issuer, within the fetch timeout.
#[tokio::test]
async fn unusable_issuers_are_refused_promptly() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let hanging = serve(Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "{}"
        }),
    ))
    .await;
    let huge = serve(Router::new().route(
        "/.well-known/openid-configuration",
        get(|| async { " ".repeat(2 * 1024 * 1024) }),
    ))
    .await;
    let plain = "http://issuer.example".to_string();
    let issuers = [closed, hanging, huge, plain];
    let (emu, http) = start_emulator(issuers.iter().map(|i| credential(i)).collect()).await;
    let ec = Key::ec_generate();
    for iss in &issuers {
        let begun = Instant::now();
        let jwt = ec.sign(&header("ES256", "k"), &sa_claims(iss));
        let (s, v) = assert_token(&http, &emu, APP, &jwt).await;
        assert_eq!(s, 401, "{iss}: {v}");
        let d = description(&v);
        assert!(
            d.starts_with("AADSTS50166") && d.contains(iss.as_str()),
            "{iss}: {v}"
        );
        assert!(
            begun.elapsed() < Duration::from_secs(8),
            "{iss}: {:?}",
            begun.elapsed()
        );
    }
}
