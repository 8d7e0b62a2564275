//! Issue 12 item 2: the capacity model (resource-based throttling under load).

use std::time::{Duration, Instant};

use crate::common::*;
use d365_emulator::{CapacityModel, Faults};
use futures_util::future::join_all;

fn model() -> Faults {
    Faults {
        capacity: Some(CapacityModel {
            concurrent: 2,
            base_latency_ms: 200,
            throttle_in_flight: 4,
            retry_after_secs: 3,
        }),
        ..Faults::default()
    }
}

/// `n` concurrent GETs: each one's status and latency.
async fn burst(env: &Env, n: usize) -> Vec<(u16, Duration)> {
    let path = key_path("usmf", "SO-2025-0001");
    join_all((0..n).map(|_| async {
        let t = Instant::now();
        let status = env.get(&path).await.status().as_u16();
        (status, t.elapsed())
    }))
    .await
}

#[tokio::test]
async fn latency_rises_past_capacity() {
    let env = start_faults(model()).await;
    let alone = burst(&env, 1).await;
    assert_eq!(alone[0].0, 200);
    assert!(alone[0].1 >= Duration::from_millis(200), "{alone:?}");
    // Four in flight on two workers: the last to arrive takes twice as long.
    let loaded = burst(&env, 4).await;
    assert!(loaded.iter().all(|(s, _)| *s == 200), "{loaded:?}");
    let slowest = loaded.iter().map(|(_, d)| *d).max().unwrap();
    assert!(slowest >= Duration::from_millis(400), "{loaded:?}");
}

#[tokio::test]
async fn past_the_threshold_429_with_retry_after() {
    let env = start_faults(model()).await;
    let results = burst(&env, 7).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let throttled = results.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(ok + throttled, 7, "{results:?}");
    assert!(ok <= 4, "at most the threshold served: {results:?}");
    assert!(throttled >= 3, "{results:?}");
    // Load gone: served again, and the 429 names its wait and its cause.
    assert_eq!(burst(&env, 1).await[0].0, 200);
    let path = key_path("usmf", "SO-2025-0001");
    let held = join_all((0..4).map(|_| env.get(&path)));
    let (_, refused) = tokio::join!(held, async {
        // The fifth leaves once the four are in flight, not after a guess.
        let deadline = Instant::now() + Duration::from_secs(5);
        while env.emu.capacity_in_flight() < 4 {
            assert!(Instant::now() < deadline, "the four never arrived");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        env.get(&path).await
    });
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "3");
    let (_, msg) = inner_message(refused).await;
    assert!(msg.contains("high resource utilization"), "{msg}");
}
