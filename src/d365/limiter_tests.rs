use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn limiter(rps: u32, concurrent: u32) -> Limiter {
    Limiter::new(
        NonZeroU32::new(rps).unwrap(),
        NonZeroU32::new(concurrent).unwrap(),
    )
}

// Paused tokio time: nothing here may wait, and if something did, the
// clock would show it.
#[tokio::test(start_paused = true)]
async fn a_paused_connection_fails_fast_with_the_time_left() {
    let l = limiter(100, 4);
    assert_eq!(l.paused_for(), None);
    drop(l.acquire().await.expect("not paused"));
    l.pause(Duration::from_millis(300));
    let start = Instant::now();
    let refused = l.acquire().await.err().expect("paused: refused");
    assert_eq!(refused.left, Duration::from_millis(300));
    assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
    tokio::time::advance(Duration::from_millis(299)).await;
    assert_eq!(
        l.acquire().await.err().map(|p| p.left),
        Some(Duration::from_millis(1))
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(l.paused_for(), None);
    drop(l.acquire().await.expect("the pause is over"));
}

#[tokio::test(start_paused = true)]
async fn pause_never_shortens() {
    let l = limiter(10, 1);
    l.pause(Duration::from_secs(10));
    l.pause(Duration::from_secs(1));
    assert_eq!(l.paused_for(), Some(Duration::from_secs(10)));
    l.pause(Duration::from_secs(20));
    assert_eq!(l.paused_for(), Some(Duration::from_secs(20)));
}

#[tokio::test(start_paused = true)]
async fn a_pause_that_begins_while_waiting_for_a_slot_fails_the_waiter_at_once() {
    let l = Arc::new(limiter(100, 1));
    let held = l.acquire().await.expect("free");
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire().await.err() })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "waits for the one slot");
    let start = Instant::now();
    l.pause(Duration::from_secs(120));
    let refused = waiter.await.unwrap().expect("the pause fails the waiter");
    assert_eq!(refused.left, Duration::from_secs(120));
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no part of the pause waited out"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn until_paused_resolves_when_a_pause_begins() {
    let l = Arc::new(limiter(100, 1));
    let watcher = {
        let l = l.clone();
        tokio::spawn(async move { l.until_paused().await })
    };
    tokio::task::yield_now().await;
    assert!(!watcher.is_finished(), "no pause yet");
    l.pause(Duration::from_secs(5));
    watcher.await.unwrap();
    l.until_paused().await; // paused now: at once
}

#[tokio::test]
async fn concurrency_is_capped() {
    let l = Arc::new(limiter(1000, 2));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (l, in_flight, peak) = (l.clone(), in_flight.clone(), peak.clone());
            tokio::spawn(async move {
                let _p = l.acquire().await.expect("never paused");
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rate_is_limited() {
    // 10/s with a burst of 2: 6 requests need at least (6-2)/10 s.
    let l = limiter(10, 2);
    let start = Instant::now();
    for _ in 0..6 {
        drop(l.acquire().await.expect("never paused"));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(380),
        "{:?}",
        start.elapsed()
    );
}

fn adaptive(ceiling: u32) -> Limiter {
    Limiter::adaptive(
        NonZeroU32::new(10_000).unwrap(),
        NonZeroU32::new(ceiling).unwrap(),
    )
}

/// Permits that can be held at once now (each waits at most 50 ms).
async fn held_at_once(l: &Limiter) -> usize {
    let mut held = Vec::new();
    while let Ok(p) = tokio::time::timeout(Duration::from_millis(50), l.acquire()).await {
        held.push(p.expect("never paused"));
    }
    held.len()
}

#[tokio::test]
async fn adaptive_starts_at_eight_and_rises_while_answers_stay_fast() {
    let l = Arc::new(adaptive(64));
    assert_eq!(l.concurrency_limit(), Some(8));
    assert_eq!(held_at_once(&l).await, 8);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (l, in_flight, peak) = (l.clone(), in_flight.clone(), peak.clone());
            tokio::spawn(async move {
                for _ in 0..12 {
                    let mut p = l.acquire().await.expect("never paused");
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    p.answered(200);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let limit = l.concurrency_limit().unwrap();
    assert!(limit > 10, "rose: {limit}");
    assert!(peak.load(Ordering::SeqCst) > 10, "and let more out");
    assert!(peak.load(Ordering::SeqCst) <= 32);
    assert_eq!(held_at_once(&l).await, limit as usize, "withheld the rest");
}

#[tokio::test]
async fn adaptive_429_halves_what_is_let_out() {
    let l = adaptive(64);
    let mut held: Vec<_> = Vec::new();
    for _ in 0..8 {
        held.push(l.acquire().await.expect("never paused"));
    }
    let mut refused = held.pop().unwrap();
    refused.answered(429);
    drop(refused);
    assert_eq!(l.concurrency_limit(), Some(4));
    // Those still out come back (no status: no sample), and only 4 go out.
    drop(held);
    assert_eq!(held_at_once(&l).await, 4);
}

#[tokio::test]
async fn fixed_has_no_adaptive_limit() {
    let l = limiter(1000, 3);
    assert_eq!(l.concurrency_limit(), None);
    let mut p = l.acquire().await.expect("not paused");
    p.answered(429);
    drop(p);
    assert_eq!(held_at_once(&l).await, 3, "a 429 moves no fixed cap");
}
