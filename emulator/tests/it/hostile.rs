//! Hostile answers (issue 10): `echoTokenInErrors` quotes the bearer token
//! in error answers; `answerPaddingBytes` pads GET answers, streamed.

use std::time::{Duration, Instant};

use crate::common::*;
use d365_emulator::Faults;
use serde_json::{Value, json};

/// The inner message fields of an OData error body (the outer one is
/// D365's fixed "An error has occurred.").
fn messages(v: &Value) -> Vec<String> {
    [
        "/innererror/message",
        "/innererror/internalexception/message",
    ]
    .iter()
    .map(|p| {
        v["error"]
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    })
    .collect()
}

#[tokio::test]
async fn echo_quotes_the_bearer_token_in_error_answers_only() {
    let env = start_faults(Faults {
        read_only_companies: vec!["USSI".into()],
        ..Faults::default()
    })
    .await;
    assert!(
        env.emu.issued_tokens().contains(&env.token),
        "the test's token is listed"
    );
    let read_only = format!("{}?cross-company=true", key_path("ussi", "SO-SI-1"));
    let write = json!({"SalesOrderStatus": "Delivered"});
    // Off: the 403 names no token.
    let r = env.patch(&read_only, Some("*"), write.clone()).await;
    assert_eq!(r.status(), 403);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&env.token), "{text}");

    // On, switched at run time through the admin API.
    let put = env.http.put(env.admin("faults")).json(&json!({
        "readOnlyCompanies": ["USSI"], "echoTokenInErrors": true
    }));
    assert_eq!(put.send().await.unwrap().status(), 200);
    let r = env.patch(&read_only, Some("*"), write).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("content-length").is_some());
    let v: Value = r.json().await.unwrap();
    let bearer = format!("Authorization: Bearer {}", env.token);
    assert_eq!(v["error"]["message"], "An error has occurred.");
    for m in messages(&v) {
        assert!(m.contains(&bearer), "{m}");
    }
    assert!(
        messages(&v)[0].starts_with("Access denied"),
        "D365's words kept: {v}"
    );
    // Any error: a 404, and a 401 (which has no OData body of its own).
    let r = env.get(&key_path("usmf", "SO-MISSING")).await;
    assert_eq!(r.status(), 404);
    let (_, m) = inner_message(r).await;
    assert!(
        m.contains("No resources were found") && m.contains(&bearer),
        "{m}"
    );
    // A Web API 404 (no route) keeps its `{"Message": …}` shape.
    let r = env.get("Customers").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    let m = v["Message"].as_str().unwrap_or_default();
    assert!(
        m.starts_with("No HTTP resource") && m.contains(&bearer),
        "{v}"
    );
    assert!(v.get("error").is_none(), "{v}");
    let r = env
        .http
        .get(env.data(&key_path("usmf", "SO-2025-0001")))
        .bearer_auth("forged")
        .send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), 401);
    let (_, m) = inner_message(r).await;
    assert!(m.contains("Authorization: Bearer forged"), "{m}");
    // Successes are untouched.
    let r = env.get(&key_path("usmf", "SO-2025-0001")).await;
    assert_eq!(r.status(), 200);
    assert!(!r.text().await.unwrap().contains(&env.token));
}

#[tokio::test]
async fn padding_streams_valid_json_without_a_length() {
    let padding: u64 = 5 * 1024 * 1024 + 7;
    let env = start_faults(Faults {
        answer_padding_bytes: Some(padding),
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let r = env.get(&path).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-length").is_none(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("etag").is_some(), "other headers kept");
    let body = r.bytes().await.unwrap();
    env.emu.set_faults(Faults::default());
    let plain = env.get(&path).await.bytes().await.unwrap();
    assert_eq!(body.len() as u64, plain.len() as u64 + padding);
    let v: Value = serde_json::from_slice(&body).expect("still one JSON value");
    assert_eq!(v, serde_json::from_slice::<Value>(&plain).unwrap());
    // Errors and writes are not padded.
    env.emu.set_faults(Faults {
        answer_padding_bytes: Some(padding),
        ..Faults::default()
    });
    let r = env.get(&key_path("usmf", "SO-MISSING")).await;
    assert_eq!(r.status(), 404);
    assert!(r.bytes().await.unwrap().len() < 4096);
}

/// A 1 GiB answer starts at once and is sent as it is read: the emulator
/// allocates none of it (a client reading it all would see 1 GiB).
#[tokio::test]
async fn a_gibibyte_of_padding_costs_the_emulator_nothing() {
    let env = start_faults(Faults {
        answer_padding_bytes: Some(1 << 30),
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    let mut r = env.get(&key_path("usmf", "SO-2025-0001")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    let mut read = 0usize;
    while read < 8 << 20 {
        read += r.chunk().await.unwrap().expect("more than 8 MiB").len();
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(r);
    // The emulator still answers (the abandoned stream holds nothing up).
    env.emu.set_faults(Faults::default());
    assert_eq!(
        env.get(&key_path("usmf", "SO-2025-0001")).await.status(),
        200
    );
}
