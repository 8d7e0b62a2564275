//! Issue 4 items 6 and 7: service protection and injected faults.

use std::time::{Duration, Instant};

use crate::common::*;
use d365_emulator::{Config, Faults, WriteSource};
use serde_json::json;

#[tokio::test]
async fn max_rps_429_with_growing_retry_after() {
    let env = start_faults(Faults {
        max_rps: Some(3),
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(env.get(&path).await.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    let r = env.get(&path).await;
    assert_eq!(r.status(), 429);
    let first: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, msg) = inner_message(r).await;
    assert!(msg.contains("high resource utilization"));
    // Keep pushing while told to wait: the wait grows.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = env.get(&path).await;
    assert_eq!(r.status(), 429);
    let second: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(second > first, "{second} > {first}");
    assert!(env.emu.counters()["GET 429"] >= 3);
    let throttled = env
        .emu
        .requests()
        .into_iter()
        .find(|r| r.status == 429)
        .unwrap();
    assert_eq!(
        throttled.sales_order_number.as_deref(),
        Some("SO-2025-0001"),
        "refused requests still name the order"
    );
}

#[tokio::test]
async fn max_concurrent_429() {
    let env = start_faults(Faults {
        max_concurrent: Some(1),
        latency_ms: 300,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let (a, b) = tokio::join!(env.get(&path), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        env.get(&path).await
    });
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 429);
    assert!(b.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn resource_throttling_answers_every_request_429_until_cleared() {
    let env = start_faults(Faults {
        throttle_retry_after: Some(120),
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    for _ in 0..2 {
        let r = env.get(&path).await;
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.headers()["retry-after"],
            "120",
            "a fixed wait, not a growing one"
        );
        let (_, msg) = inner_message(r).await;
        assert!(msg.contains("high resource utilization"), "{msg}");
    }
    env.emu.set_faults(Faults::default());
    assert_eq!(env.get(&path).await.status(), 200);
}

#[tokio::test]
async fn latency_and_jitter() {
    let env = start_faults(Faults {
        latency_ms: 150,
        latency_jitter_ms: 50,
        ..Faults::default()
    })
    .await;
    let t = Instant::now();
    assert_eq!(
        env.get(&key_path("usmf", "SO-2025-0001")).await.status(),
        200
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[tokio::test]
async fn cold_start_slows_only_the_first_call() {
    let env = start_faults(Faults {
        cold_start_ms: 400,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let t = Instant::now();
    env.get(&path).await;
    assert!(t.elapsed() >= Duration::from_millis(400));
    let t = Instant::now();
    env.get(&path).await;
    assert!(t.elapsed() < Duration::from_millis(300));
    env.emu.reset();
    let t = Instant::now();
    env.get(&path).await;
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "slow again after reset"
    );
}

#[tokio::test]
async fn error_rate_and_status() {
    let env = start_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    assert_eq!(env.get(&path).await.status(), 503);
    // An injected error happens before the write: nothing changes.
    assert_eq!(
        env.patch(&path, Some("*"), json!({"SalesOrderStatus": "Delivered"}))
            .await
            .status(),
        503
    );
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0001").unwrap()["SalesOrderStatus"],
        "Backorder"
    );
    env.emu.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(env.get(&path).await.status(), 500);
}

#[tokio::test]
async fn hang_past_client_timeout() {
    let env = start_faults(Faults {
        hang_rate: 1.0,
        hang_ms: 2_000,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let r = env
        .http
        .patch(env.data(&path))
        .bearer_auth(&env.token)
        .header("If-Match", "*")
        .json(&json!({"SalesOrderStatus": "Delivered"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    // The write took effect even though the client never saw the answer.
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0001").unwrap()["SalesOrderStatus"],
        "Delivered"
    );
}

#[tokio::test]
async fn conflict_rate_makes_stale_patches_and_history_proves_it() {
    let env = start_faults(Faults {
        conflict_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let etag = env.etag("usmf", "SO-2025-0001").await;
    let r = env
        .patch(&path, Some(&etag), json!({"SalesOrderStatus": "Delivered"}))
        .await;
    assert_eq!(r.status(), 412);
    let order = env.emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(order["SalesOrderStatus"], "Backorder");
    assert!(
        order["CustomerRequisitionNumber"]
            .as_str()
            .unwrap()
            .starts_with("CW-")
    );
    let h = env.emu.history();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].source, WriteSource::ConcurrentWriter);
    assert!(h[0].accepted);
    assert_eq!(h[1].source, WriteSource::Client);
    assert!(!h[1].accepted);
    assert_eq!(h[1].if_match.as_deref(), Some(etag.as_str()));
    assert_eq!(h[1].etag_before, h[0].etag_after.clone().unwrap());
    assert!(h[0].seq < h[1].seq);
    // No accepted client write ever carried a stale If-Match.
    assert!(
        h.iter()
            .filter(|w| w.source == WriteSource::Client && w.accepted)
            .all(|w| w.if_match.as_deref().is_none_or(|m| m == w.etag_before))
    );
}

/// Runs a fixed request sequence and returns which PATCHes conflicted.
async fn conflict_pattern(seed: u64) -> Vec<u16> {
    let env = start_with(Config {
        orders: seed_orders(),
        seed,
        faults: Faults {
            conflict_rate: 0.4,
            ..Faults::default()
        },
        ..Config::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0001");
    let mut out = Vec::new();
    for _ in 0..30 {
        let e = env.etag("usmf", "SO-2025-0001").await;
        out.push(
            env.patch(
                &path,
                Some(&e),
                json!({"ConfirmedReceiptDate": "2025-02-08T12:00:00Z"}),
            )
            .await
            .status()
            .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn faults_reproducible_by_seed() {
    let a = conflict_pattern(42).await;
    let b = conflict_pattern(42).await;
    let c = conflict_pattern(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let conflicts = a.iter().filter(|s| **s == 412).count();
    assert!(
        (4..=20).contains(&conflicts),
        "{conflicts} of 30 at rate 0.4"
    );
}
