//! Property tests of the token-answer parsing: whatever the token endpoint
//! answers (any status, any bytes), `TokenCache::token` returns a token or
//! an error and never panics. The parser is private to auth.rs, so the
//! cases go through the real request path against a local stub that
//! answers each case's bytes. `make fuzz` runs them long.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use proptest::prelude::*;
use secrecy::SecretString;
use tokio::runtime::Runtime;
use url::Url;

use super::NoopObserver;
use super::auth::TokenCache;
use super::http::Transport;

/// What the stub answers next: status and body.
type Answer = Arc<Mutex<(u16, Vec<u8>)>>;

/// One runtime and stub for all cases of a test (a server per case would
/// dominate the run time).
struct Stub {
    rt: Runtime,
    url: Url,
    answer: Answer,
}

impl Stub {
    fn start() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer: Answer = Arc::new(Mutex::new((200, Vec::new())));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!(
            "http://{}/t/oauth2/v2.0/token",
            listener.local_addr().unwrap()
        );
        let app = axum::Router::new()
            .fallback(|State(a): State<Answer>| async move {
                let (status, body) = a.lock().unwrap().clone();
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                (status, [("content-type", "application/json")], body)
            })
            .with_state(answer.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        Self {
            rt,
            url: Url::parse(&url).unwrap(),
            answer,
        }
    }

    /// Asks a fresh cache for a token while the stub answers `status`
    /// and `body`; `Ok` carries nothing (a token is secret).
    fn ask(&self, status: u16, body: Vec<u8>) -> Result<(), String> {
        *self.answer.lock().unwrap() = (status, body);
        let transport = Transport::new(
            reqwest::Client::new(),
            Arc::new(NoopObserver),
            Duration::from_secs(5),
            super::settings::DEFAULT_MAX_ANSWER_BYTES,
        );
        let cache = TokenCache::new(
            transport,
            self.url.clone(),
            "client".into(),
            super::Credential::ClientSecret(SecretString::from("the-secret")),
            "scope".into(),
        );
        self.rt
            .block_on(cache.token())
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

thread_local! {
    static STUB: Stub = Stub::start();
}

/// A token answer with arbitrary values in its fields.
fn token_answer() -> impl Strategy<Value = serde_json::Value> {
    let expires = prop_oneof![
        any::<u64>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(|n| serde_json::Value::from(n.to_string())),
    ];
    let kind = prop::option::of(prop_oneof![Just("Bearer".to_owned()), any::<String>()]);
    (any::<String>(), kind, expires).prop_map(|(token, kind, expires)| {
        serde_json::json!({"access_token": token, "token_type": kind, "expires_in": expires})
    })
}

proptest! {
    // A quarter of the usual cases: each is a real HTTP exchange.
    #![proptest_config(ProptestConfig { cases: (ProptestConfig::default().cases / 4).max(1), ..ProptestConfig::default() })]

    #[test]
    fn token_answer_bytes_never_panic(status in 200u16..600, body in any::<Vec<u8>>()) {
        let got = STUB.with(|s| s.ask(status, body));
        // Arbitrary bytes are never a token; every failure says which endpoint.
        prop_assert!(got.is_err_and(|e| e.contains("token endpoint")));
    }

    /// Well-formed JSON with arbitrary values: a token or an error, never a
    /// panic, whatever the lifetime (it found the `Instant + Duration`
    /// overflow that auth.rs now refuses).
    #[test]
    fn token_answer_fields_never_panic(doc in token_answer()) {
        let _ = STUB.with(|s| s.ask(200, serde_json::to_vec(&doc).unwrap()));
    }
}

/// The stub really serves tokens: a valid answer is accepted, so the
/// properties above are not passing on a broken stub.
#[test]
fn stub_serves_a_valid_token() {
    let doc = serde_json::json!({"access_token": "t", "token_type": "Bearer", "expires_in": 3599});
    let got = STUB.with(|s| s.ask(200, serde_json::to_vec(&doc).unwrap()));
    assert_eq!(got, Ok(()));
}

/// Regression case found by `token_answer_fields_never_panic` (shrunk),
/// and the one the issue names.
#[test]
fn huge_expires_in_is_an_error_not_a_panic() {
    for secs in [9_223_372_036_854_760_547_u64, u64::MAX] {
        let doc = serde_json::json!({"access_token": "a", "expires_in": secs});
        let got = STUB.with(|s| s.ask(200, serde_json::to_vec(&doc).unwrap()));
        assert!(got.is_ok() || got.is_err_and(|e| e.contains("expires_in")));
    }
}
