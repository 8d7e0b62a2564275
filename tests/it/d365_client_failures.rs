//! The D365 client against the emulator (and a scripted stub) when things
//! go wrong: limiter and throttling, tokens, and each error D365 answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::stub::{Mode, Stub};
use d365_emulator::Faults;
use sales_order_operator::d365::{D365Client, D365Error, ETag, RequestKind};
use secrecy::SecretString;
use serde_json::Map;

#[tokio::test]
async fn throttling_pauses_the_whole_connection() {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        max_rps: Some(1),
        ..Default::default()
    });
    client.get_order(&key(1), &[]).await.unwrap();
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    let retry_after = err.retry_after().expect("throttled");
    assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
    assert!(
        err.to_string().contains("high resource utilization"),
        "{err}"
    );
    let paused = client.paused_for().expect("connection paused");
    assert!(paused <= retry_after && paused > retry_after - Duration::from_millis(500));
    let sent_before = data_requests(&emu).len();

    // Another order on another clone of the client is refused at once with
    // the time left: nothing is sent, and nobody waits the pause out.
    let asked_at = Instant::now();
    let refused = client.clone().get_order(&key(2), &[]).await.unwrap_err();
    assert!(
        asked_at.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked_at.elapsed()
    );
    let left = refused.retry_after().expect("refused as throttled");
    assert!(
        left <= paused && left > paused - Duration::from_millis(500),
        "{left:?}"
    );
    assert!(refused.to_string().contains("not sent"), "{refused}");
    assert_eq!(
        data_requests(&emu).len(),
        sent_before,
        "a request left during the pause"
    );

    testkit::wait_for(retry_after + Duration::from_secs(1), || async {
        client.paused_for().is_none().then_some(())
    })
    .await
    .expect("the pause ends");
    let entity = client
        .get_order(&key(2), &[])
        .await
        .expect("sent after the pause");
    assert_eq!(entity.fields[STATUS], "Backorder");
    assert_eq!(
        data_requests(&emu)
            .iter()
            .filter(|r| r.status == 429)
            .count(),
        1
    );
}

/// Sends 10 concurrent GETs through a client with the given limits while
/// the emulator enforces `emulator_faults`; returns the elapsed time.
async fn burst_through_limiter(rps: u32, concurrent: u32, emulator_faults: Faults) -> Duration {
    let emu = emulator(10).await;
    emu.set_faults(emulator_faults);
    let mut s = settings(&emu);
    s.max_requests_per_second = rps;
    s.max_concurrent_requests = concurrent;
    let client = D365Client::new(s, Arc::new(Recorder::default())).unwrap();
    client.authenticate().await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (1..=10)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { c.get_order(&key(n), &[STATUS]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("no request is throttled");
    }
    let elapsed = started.elapsed();
    assert!(data_requests(&emu).iter().all(|r| r.status == 200));
    elapsed
}

#[tokio::test]
async fn client_caps_concurrent_requests() {
    let faults = Faults {
        max_concurrent: Some(2),
        latency_ms: 100,
        ..Default::default()
    };
    let elapsed = burst_through_limiter(1000, 2, faults).await;
    // 10 requests of 100 ms, two at a time.
    assert!(elapsed >= Duration::from_millis(480), "{elapsed:?}");
}

#[tokio::test]
async fn client_caps_requests_per_second() {
    let faults = Faults {
        max_rps: Some(5),
        ..Default::default()
    };
    // GCRA lets `burst + rate` requests into any closed one-second window:
    // 2 + 3 = 5, the emulator's cap, wherever its window starts. (4/s with
    // a burst of 2 made 6 whenever the first request's connection setup
    // delayed the start of the emulator's window: a flaky 429.)
    let elapsed = burst_through_limiter(3, 2, faults).await;
    // 10 requests at 3/s with a burst of 2: 8 more at 1/3 s each, 2.67 s.
    assert!(elapsed >= Duration::from_millis(2600), "{elapsed:?}");
}

#[tokio::test]
async fn revoked_token_is_refreshed_once() {
    let (emu, client, _) = setup(3).await;
    client.get_order(&key(1), &[]).await.unwrap();
    assert_eq!(emu.token_requests(), 1);
    client.get_order(&key(1), &[]).await.unwrap();
    assert_eq!(emu.token_requests(), 1, "token is cached");
    emu.revoke_tokens();
    let entity = client.get_order(&key(2), &[]).await.unwrap();
    assert_eq!(entity.fields[STATUS], "Backorder");
    assert_eq!(emu.token_requests(), 2);
    let statuses: Vec<u16> = data_requests(&emu).iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401, 200]);
}

#[tokio::test]
async fn many_orders_on_a_cold_cache_fetch_one_token() {
    let (emu, client, _) = setup(20).await;
    let tasks: Vec<_> = (1..=20)
        .map(|n| {
            let c = client.clone();
            tokio::spawn(async move { c.get_order(&key(n), &[STATUS]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(emu.token_requests(), 1);
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_without_leaking_the_secret() {
    let emu = emulator(1).await;
    let mut s = settings(&emu);
    s.credential = sales_order_operator::d365::Credential::ClientSecret(SecretString::from(
        "wrong-secret-value",
    ));
    let client = D365Client::new(s, Arc::new(Recorder::default())).unwrap();
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    assert!(matches!(err, D365Error::Unauthorized { .. }), "{err:?}");
    let text = format!("{err} {err:?} {client:?}");
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
    assert_eq!(count(&emu, "GET"), 0);
}

#[tokio::test]
async fn read_only_company_is_forbidden() {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        read_only_companies: vec!["USMF".into()],
        ..Default::default()
    });
    let k = key(1);
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    let err = client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap_err();
    assert!(matches!(err, D365Error::Forbidden { .. }), "{err:?}");
    assert!(err.to_string().contains("Access denied"), "{err}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn missing_order_is_not_found() {
    let (_emu, client, _) = setup(3).await;
    let err = client.get_order(&key(9999), &[]).await.unwrap_err();
    assert!(matches!(err, D365Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("SO-2025-9999"), "{err}");
    assert_eq!(err.status_code(), Some(404));
}

#[tokio::test]
async fn write_out_of_a_final_status_is_rejected_with_d365_text() {
    let (emu, client, _) = setup(3).await;
    let k = key(1);
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Invoiced")]))
        .await
        .unwrap();
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    let err = client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap_err();
    let D365Error::Rejected { status, message } = &err else {
        panic!("expected Rejected, got {err:?}")
    };
    assert_eq!(
        *status, 400,
        "current releases answer validation failures 400"
    );
    assert!(message.contains("Write failed"), "{message}");
    assert!(
        message.contains("cannot be changed from status Invoiced to Delivered"),
        "{message}"
    );
    assert!(!err.is_transient());
    assert_eq!(emu_field(&emu, &k, STATUS), "Invoiced");
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let (emu, client, _) = setup(3).await;
    for status in [500, 503] {
        emu.set_faults(Faults {
            error_rate: 1.0,
            error_status: status,
            ..Default::default()
        });
        let err = client.get_order(&key(1), &[]).await.unwrap_err();
        assert!(
            matches!(&err, D365Error::Unavailable { status: Some(s), .. } if *s == status),
            "{err:?}"
        );
        assert!(err.to_string().contains("injected fault"), "{err}");
        assert!(err.is_transient());
    }
}

#[tokio::test]
async fn hang_past_the_timeout_is_unavailable() {
    let emu = emulator(3).await;
    let mut s = settings(&emu);
    s.request_timeout = Duration::from_millis(300);
    let recorder = Arc::new(Recorder::default());
    let client = D365Client::new(s, recorder.clone()).unwrap();
    client.authenticate().await.unwrap();
    emu.set_faults(Faults {
        hang_rate: 1.0,
        hang_ms: 5_000,
        ..Default::default()
    });
    let started = Instant::now();
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, D365Error::Unavailable { status: None, message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    let last = recorder.events().pop().unwrap();
    assert_eq!((last.kind, last.status), (RequestKind::Entity, None));
}

#[tokio::test]
async fn bad_arguments_send_nothing() {
    let (emu, client, _) = setup(1).await;
    let etag = ETag::parse("W/\"x\"").unwrap();
    let err = client
        .patch_order(&key(1), &etag, &Map::new())
        .await
        .unwrap_err();
    assert!(matches!(err, D365Error::Config { .. }), "{err:?}");
    let err = client.get_order(&key(1), &["A,B"]).await.unwrap_err();
    assert!(matches!(err, D365Error::Config { .. }), "{err:?}");
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn every_request_carries_odata_headers_token_and_cross_company() {
    let stub = Stub::start(Mode::HeaderEtagOnly).await;
    let client = stub.client(None);
    let k = key(7);
    client.get_order(&k, &[STATUS, REQUISITION]).await.unwrap();
    let etag = ETag::parse("W/\"e1\"").unwrap();
    client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    let seen = stub.seen();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PATCH"]);
    let path = "/data/SalesOrderHeadersV2(dataAreaId='USMF',SalesOrderNumber='SO-2025-0007')";
    assert_eq!(
        seen[0].uri,
        format!("{path}?cross-company=true&$select={STATUS},{REQUISITION}")
    );
    assert_eq!(seen[1].uri, format!("{path}?cross-company=true"));
    for request in &seen {
        let h = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(h("odata-version").as_deref(), Some("4.0"));
        assert_eq!(h("odata-maxversion").as_deref(), Some("4.0"));
        assert_eq!(h("accept").as_deref(), Some("application/json"));
        assert_eq!(h("authorization").as_deref(), Some("Bearer stub-token-1"));
    }
    assert_eq!(seen[0].headers.get("if-match"), None);
    assert_eq!(seen[1].headers["if-match"], "W/\"e1\"");
    assert_eq!(seen[1].headers["content-type"], "application/json");
}

#[tokio::test]
async fn etag_header_is_the_fallback_when_the_body_has_none() {
    let stub = Stub::start(Mode::HeaderEtagOnly).await;
    let entity = stub.client(None).get_order(&key(1), &[]).await.unwrap();
    assert_eq!(entity.etag.as_str(), "W/\"from-header\"");
    assert_eq!(entity.fields[STATUS], "Backorder");
}

#[tokio::test]
async fn persistent_401_is_unauthorized_after_exactly_one_refresh() {
    let stub = Stub::start(Mode::Always401).await;
    let err = stub.client(None).get_order(&key(1), &[]).await.unwrap_err();
    assert!(matches!(err, D365Error::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("after a token refresh"), "{err}");
    assert!(!err.to_string().contains("stub-token"), "{err}");
    assert_eq!(stub.token_requests(), 2);
    let seen = stub.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["authorization"], "Bearer stub-token-1");
    assert_eq!(seen[1].headers["authorization"], "Bearer stub-token-2");
}

#[tokio::test]
async fn throttle_without_retry_after_pauses_30_seconds() {
    let stub = Stub::start(Mode::ThrottleNoRetryAfter).await;
    let client = stub.client(None);
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    let paused = client.paused_for().unwrap();
    assert!(paused > Duration::from_secs(29), "{paused:?}");
}
