//! Issue 4 item 1: token endpoint and bearer checks on /data.

use std::time::Duration;

use crate::common::*;
use d365_emulator::{Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT};
use serde_json::Value;

async fn token_call(env: &Env, tenant: &str, id: &str, secret: &str, scope: &str) -> (u16, Value) {
    let r = env
        .http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", env.emu.url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn token_flow_and_errors() {
    let env = start().await;
    let scope = format!("{}/.default", env.emu.url());
    let (s, v) = token_call(
        &env,
        DEFAULT_TENANT,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &scope,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(v["access_token"].as_str().unwrap().len() >= 32);
    // Trailing slash on the resource and upper case are tolerated.
    let (s, _) = token_call(
        &env,
        DEFAULT_TENANT,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &format!("{}//.default", env.emu.url().to_uppercase()),
    )
    .await;
    assert_eq!(s, 200);

    let (s, v) = token_call(&env, DEFAULT_TENANT, DEFAULT_CLIENT_ID, "wrong", &scope).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"], "invalid_client");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215")
    );
    let (s, v) = token_call(
        &env,
        DEFAULT_TENANT,
        "someone-else",
        DEFAULT_CLIENT_SECRET,
        &scope,
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
    let (s, v) = token_call(
        &env,
        DEFAULT_TENANT,
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        "https://other.operations.dynamics.com/.default",
    )
    .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_scope"));
    let (s, _) = token_call(
        &env,
        "99999999-0000-0000-0000-000000000000",
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        &scope,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(env.emu.token_requests(), 6 + 1);
}

#[tokio::test]
async fn data_requires_valid_bearer() {
    let env = start().await;
    let path = key_path("usmf", "SO-2025-0001");
    let r = env.http.get(env.data(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = env
        .http
        .get(env.data(&path))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(env.get(&path).await.status(), 200);
    // Revoked tokens stop working; a fresh one works (the refresh path).
    env.emu.revoke_tokens();
    assert_eq!(env.get(&path).await.status(), 401);
    let fresh = token(&env.http, &env.emu).await;
    let r = env
        .http
        .get(env.data(&path))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tokens_expire_after_ttl() {
    let env = start_with(Config {
        orders: seed_orders(),
        token_ttl: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    assert_eq!(env.get(&path).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(env.get(&path).await.status(), 401);
}
