//! Answers meant to hurt the operator: bodies too large to buffer, absurd
//! token lifetimes, errors that echo the credentials. Each is refused or
//! defused, never a panic or a leak.

use crate::common::key;
use crate::memory::{peak_rss, ran_in_child};
use crate::stub::{HUGE, Mode, Stub};
use std::time::Duration;

use sales_order_operator::d365::{
    BatchSettings, D365Error, DEFAULT_MAX_ANSWER_BYTES, ETag, MAX_SMALL_ANSWER_BYTES,
};
use serde_json::Map;

const MIB: u64 = 1 << 20;

fn assert_too_large(err: &D365Error, limit: usize) {
    assert!(
        matches!(err, D365Error::Unavailable { .. }) && err.is_transient(),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("answer too large (more than {limit} bytes)")),
        "{text}"
    );
}

/// A 1 GiB answer without `Content-Length` is cut at the 16 MiB default.
/// Measured in a child process running only this test, so the peak RSS is
/// this test's alone (other tests share the parent).
#[tokio::test]
async fn endless_answer_is_refused_with_bounded_memory() {
    if ran_in_child("d365_hostile::endless_answer_is_refused_with_bounded_memory") {
        return;
    }
    let stub = Stub::start(Mode::Huge { declared: false }).await;
    let client = stub.client(None);
    client.authenticate().await.unwrap();
    let before = peak_rss();
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    let after = peak_rss();
    println!(
        "peak RSS before {} KiB, after {} KiB; stub produced {} of {} MiB",
        before / 1024,
        after / 1024,
        stub.served() / MIB,
        HUGE / MIB
    );
    assert_too_large(&err, DEFAULT_MAX_ANSWER_BYTES);
    assert!(
        after - before < 64 * MIB,
        "grew {} MiB",
        (after - before) / MIB
    );
    assert!(stub.served() < 256 * MIB, "read on: {}", stub.served());
}

#[tokio::test]
async fn declared_length_over_the_limit_is_refused_unread() {
    let stub = Stub::start(Mode::Huge { declared: true }).await;
    let err = stub.client(None).get_order(&key(1), &[]).await.unwrap_err();
    assert_too_large(&err, DEFAULT_MAX_ANSWER_BYTES);
    // Only what the socket buffers took before the client hung up.
    assert!(stub.served() < 64 * MIB, "read on: {}", stub.served());
}

#[tokio::test]
async fn huge_token_answer_is_refused() {
    let stub = Stub::start(Mode::HugeToken).await;
    let err = stub.client(None).authenticate().await.unwrap_err();
    assert_too_large(&err, MAX_SMALL_ANSWER_BYTES);
    assert!(err.to_string().contains("token endpoint"), "{err}");
    assert!(!err.to_string().contains("stub-secret"), "{err}");
}

/// `Instant + u64::MAX seconds` used to panic the whole process.
#[tokio::test]
async fn expires_in_u64_max_is_an_error_not_a_panic() {
    let stub = Stub::start(Mode::ExpiresIn("18446744073709551615")).await;
    let err = stub.client(None).authenticate().await.unwrap_err();
    assert!(matches!(err, D365Error::InvalidResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("expires_in"), "{err}");
}

#[tokio::test]
async fn long_token_lifetime_is_clamped_and_used() {
    let stub = Stub::start(Mode::ExpiresIn("\"172800\"")).await;
    let client = stub.client(None);
    client.get_order(&key(1), &[]).await.unwrap();
    client.get_order(&key(1), &[]).await.unwrap();
    assert_eq!(stub.token_requests(), 1, "the clamped token is cached");
}

/// A 403 quoting the request's bearer token and the client secret, alone
/// or as a `$batch` part: the error (which becomes status, an Event and a
/// log line) quotes neither.
#[tokio::test]
async fn echoed_credentials_are_redacted() {
    let stub = Stub::start(Mode::EchoCredentials403).await;
    let err = stub.client(None).get_order(&key(1), &[]).await.unwrap_err();
    assert_redacted(&err);
    let stub = Stub::start(Mode::EchoCredentialsBatch).await;
    let batch = BatchSettings {
        max_operations: 1,
        window: Duration::ZERO,
    };
    let mut changes = Map::new();
    changes.insert("SalesOrderStatus".into(), "Delivered".into());
    let err = stub
        .client(Some(batch))
        .patch_order(&key(1), &ETag::parse("W/\"e\"").unwrap(), &changes)
        .await
        .unwrap_err();
    assert_redacted(&err);
}

fn assert_redacted(err: &D365Error) {
    assert!(matches!(err, D365Error::Forbidden { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("stub-token"), "{text}");
    assert!(!text.contains("stub-secret"), "{text}");
    assert!(
        text.contains("Access denied for Bearer [REDACTED] (client_secret=[REDACTED])"),
        "{text}"
    );
}
