//! The D365 client against the emulator over real loopback HTTP, plus a
//! scripted stub for answers the emulator cannot give.

#[path = "d365_client/stub.rs"]
mod stub;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d365_emulator::{
    Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT, Emulator, Faults,
    WriteSource, generate_orders,
};
use sales_order_operator::d365::{
    ConnectionSettings, D365Client, D365Error, ETag, OrderKey, PatchOutcome, RequestEvent,
    RequestKind, RequestObserver, ResponseContext,
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use stub::{Mode, Stub};

const STATUS: &str = "SalesOrderStatus";
const REQUISITION: &str = "CustomerRequisitionNumber";

#[derive(Default)]
struct Recorder(Mutex<Vec<RequestEvent>>);

impl RequestObserver for Recorder {
    fn observe(&self, event: &RequestEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn events(&self) -> Vec<RequestEvent> {
        self.0.lock().unwrap().clone()
    }
}

fn settings(emu: &Emulator) -> ConnectionSettings {
    let url = url::Url::parse(&emu.url()).unwrap();
    let mut s = ConnectionSettings::new(
        url.clone(),
        url,
        DEFAULT_TENANT,
        DEFAULT_CLIENT_ID,
        SecretString::from(DEFAULT_CLIENT_SECRET),
    );
    s.max_requests_per_second = 200;
    s.max_concurrent_requests = 16;
    s.request_timeout = Duration::from_secs(5);
    s
}

async fn emulator(orders: usize) -> Emulator {
    Emulator::start(Config {
        orders: generate_orders(orders, 1),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

async fn setup(orders: usize) -> (Emulator, D365Client, Arc<Recorder>) {
    let emu = emulator(orders).await;
    let recorder = Arc::new(Recorder::default());
    let client = D365Client::new(settings(&emu), recorder.clone()).unwrap();
    (emu, client, recorder)
}

fn key(n: u32) -> OrderKey {
    OrderKey::new("USMF", format!("SO-2025-{n:04}"))
}

fn changes(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

fn emu_etag(emu: &Emulator, k: &OrderKey) -> String {
    emu.order(&k.data_area_id, &k.sales_order_number).unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn emu_field(emu: &Emulator, k: &OrderKey, field: &str) -> Value {
    emu.order(&k.data_area_id, &k.sales_order_number).unwrap()[field].clone()
}

/// Requests to `/data` (the emulator also records token requests).
fn data_requests(emu: &Emulator) -> Vec<d365_emulator::RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/data"))
        .collect()
}

fn count(emu: &Emulator, method: &str) -> usize {
    data_requests(emu)
        .iter()
        .filter(|r| r.method == method)
        .count()
}

fn client_writes(emu: &Emulator) -> Vec<d365_emulator::WriteRecord> {
    emu.history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client)
        .collect()
}

#[tokio::test]
async fn get_returns_entity_and_body_etag() {
    let (emu, client, recorder) = setup(3).await;
    // No ETag header: the tag must come from the body's @odata.etag.
    emu.set_faults(Faults {
        get_etag_header: false,
        ..Default::default()
    });
    let k = key(2);
    let entity = client.get_order(&k, &[STATUS, REQUISITION]).await.unwrap();
    assert_eq!(entity.etag.as_str(), emu_etag(&emu, &k));
    assert!(entity.etag.is_weak());
    assert_eq!(entity.fields[STATUS], "Backorder");
    assert_eq!(entity.fields[REQUISITION], emu_field(&emu, &k, REQUISITION));
    assert!(entity.fields.keys().all(|f| !f.starts_with("@odata")));
    assert!(
        !entity.fields.contains_key("SalesOrderName"),
        "$select was sent"
    );

    let events = recorder.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].method, events[0].kind, events[0].status),
        ("POST", RequestKind::Token, Some(200))
    );
    assert_eq!(
        (events[1].method, events[1].kind, events[1].status),
        ("GET", RequestKind::Entity, Some(200))
    );
}

#[tokio::test]
async fn cross_company_and_awkward_keys_reach_the_order() {
    let (emu, client, _) = setup(1).await;
    // Not the default company (needs cross-company=true) and a number that
    // needs quote doubling and percent-encoding.
    let number = "SO 'Ü'/1#?";
    emu.put_order(json!({"dataAreaId": "demf", "SalesOrderNumber": number, STATUS: "Backorder"}));
    let k = OrderKey::new("DEMF", number);
    let entity = client.get_order(&k, &[STATUS]).await.unwrap();
    assert_eq!(
        entity.etag.as_str(),
        emu_etag(&emu, &OrderKey::new("demf", number))
    );
    client
        .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    let writes = client_writes(&emu);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].sales_order_number, number);
    assert!(writes[0].accepted);
}

#[tokio::test]
async fn happy_path_is_one_get_and_one_patch_with_if_match() {
    let (emu, client, _) = setup(3).await;
    let k = key(1);
    let entity = client.get_order(&k, &[STATUS]).await.unwrap();
    let outcome = client
        .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(outcome, PatchOutcome::NoContent { etag: None });
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    assert_eq!((count(&emu, "GET"), count(&emu, "PATCH")), (1, 1));
    assert_eq!(data_requests(&emu).len(), 2);
    let writes = client_writes(&emu);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].if_match.as_deref(), Some(entity.etag.as_str()));
    assert_eq!(writes[0].fields, changes(&[(STATUS, "Delivered")]));
}

#[tokio::test]
async fn patch_answer_with_entity_or_etag_header_is_accepted() {
    let (emu, client, _) = setup(3).await;
    let k = key(1);
    emu.set_faults(Faults {
        patch_returns_entity: true,
        ..Default::default()
    });
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    let outcome = client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    let PatchOutcome::Entity(entity) = &outcome else {
        panic!("expected the entity, got {outcome:?}")
    };
    assert_eq!(entity.fields[STATUS], "Delivered");
    assert_eq!(entity.etag.as_str(), emu_etag(&emu, &k));

    emu.set_faults(Faults {
        patch_etag_header: true,
        ..Default::default()
    });
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    let outcome = client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Backorder")]))
        .await
        .unwrap();
    assert_eq!(outcome.etag().unwrap().as_str(), emu_etag(&emu, &k));
    assert!(matches!(outcome, PatchOutcome::NoContent { .. }));
}

async fn stale_etag_conflicts_then_fresh_etag_wins(conflict_status: u16) {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        conflict_status,
        ..Default::default()
    });
    let k = key(3);
    let stale = client.get_order(&k, &[STATUS]).await.unwrap().etag;
    emu.external_write(
        "usmf",
        &k.sales_order_number,
        changes(&[("SalesOrderName", "edited")]),
    )
    .unwrap();
    let err = client
        .patch_order(&k, &stale, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.status_code(), Some(conflict_status));
    let D365Error::Conflict {
        sent_etag, message, ..
    } = &err
    else {
        unreachable!()
    };
    assert_eq!(sent_etag, stale.as_str());
    assert!(message.contains("modified by another user"), "{message}");
    assert!(message.contains(&k.to_string()), "{message}");
    assert_eq!(emu_field(&emu, &k, STATUS), "Backorder");

    let fresh = client.get_order(&k, &[STATUS]).await.unwrap().etag;
    assert_ne!(fresh, stale);
    client
        .patch_order(&k, &fresh, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    let writes = client_writes(&emu);
    assert!(
        writes
            .iter()
            .filter(|w| w.if_match.as_deref() == Some(stale.as_str()))
            .all(|w| !w.accepted),
        "a write with the stale ETag was accepted: {writes:?}"
    );
    let accepted: Vec<_> = writes.iter().filter(|w| w.accepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].if_match.as_deref(), Some(fresh.as_str()));
    assert_eq!(emu_field(&emu, &k, "SalesOrderName"), "edited");
}

#[tokio::test]
async fn stale_etag_412_is_a_conflict() {
    stale_etag_conflicts_then_fresh_etag_wins(412).await;
}

#[tokio::test]
async fn stale_etag_409_is_a_conflict() {
    stale_etag_conflicts_then_fresh_etag_wins(409).await;
}

#[tokio::test]
async fn concurrent_writer_change_survives() {
    let (emu, client, _) = setup(3).await;
    let k = key(2);
    let first = client.get_order(&k, &[STATUS]).await.unwrap();
    let theirs = "PO-THEIRS-1";
    emu.external_write(
        "usmf",
        &k.sales_order_number,
        changes(&[(REQUISITION, theirs)]),
    )
    .unwrap();
    let ours = changes(&[(STATUS, "Delivered")]);
    let err = client
        .patch_order(&k, &first.etag, &ours)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let second = client.get_order(&k, &[STATUS]).await.unwrap();
    client.patch_order(&k, &second.etag, &ours).await.unwrap();
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    assert_eq!(
        emu_field(&emu, &k, REQUISITION),
        theirs,
        "their edit was lost"
    );
    assert!(
        client_writes(&emu)
            .iter()
            .all(|w| !w.fields.contains_key(REQUISITION))
    );
}

#[tokio::test]
async fn missing_if_match_is_428_and_the_client_always_sends_one() {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        require_if_match: true,
        ..Default::default()
    });
    let k = key(1);

    // The client always sends If-Match, so a service that demands one works.
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(
        client_writes(&emu)[0].if_match.as_deref(),
        Some(etag.as_str())
    );

    // The client cannot send an unconditional PATCH (by design), so the 428
    // answer is obtained raw and classified with the client's own mapping.
    let http = reqwest::Client::new();
    let token: Value = http
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", emu.scope().as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/data/{}?cross-company=true",
        emu.url(),
        k.path_segment("SalesOrderHeadersV2")
    );
    let response = http
        .patch(url)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&changes(&[(STATUS, "Canceled")]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let ctx = ResponseContext {
        method: "PATCH",
        key: Some(&k),
        if_match: None,
    };
    let err = D365Error::from_odata_response(&ctx, status, &headers, &body);
    assert!(
        matches!(err, D365Error::PreconditionRequired { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("If-Match"), "{err}");
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
}

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
    let throttled_at = Instant::now();
    let paused = client.paused_for().expect("connection paused");
    assert!(paused <= retry_after && paused > retry_after - Duration::from_millis(500));
    let sent_before = data_requests(&emu).len();

    // Another order on another clone of the client waits out the pause.
    let other = client.clone();
    let waiting = tokio::spawn(async move { other.get_order(&key(2), &[]).await });
    tokio::time::sleep(retry_after - Duration::from_millis(400)).await;
    assert_eq!(
        data_requests(&emu).len(),
        sent_before,
        "a request left during the pause"
    );
    let entity = waiting.await.unwrap().expect("succeeds after the pause");
    assert!(throttled_at.elapsed() >= retry_after - Duration::from_millis(50));
    assert_eq!(entity.fields[STATUS], "Backorder");
    assert_eq!(client.paused_for(), None);
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
    let elapsed = burst_through_limiter(4, 2, faults).await;
    // 10 requests at 4/s with a burst of 2 take at least 2 s.
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
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
    s.client_secret = SecretString::from("wrong-secret-value");
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
    assert_eq!(*status, 500);
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
        matches!(&err, D365Error::Unavailable { status: None, message } if message.contains("timed out")),
        "{err:?}"
    );
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

fn stub_client(stub: &Stub) -> D365Client {
    let url = url::Url::parse(&stub.url).unwrap();
    let s = ConnectionSettings::new(
        url.clone(),
        url,
        "tenant",
        "client",
        SecretString::from("stub-secret"),
    );
    D365Client::new(s, Arc::new(Recorder::default())).unwrap()
}

#[tokio::test]
async fn every_request_carries_odata_headers_token_and_cross_company() {
    let stub = Stub::start(Mode::HeaderEtagOnly).await;
    let client = stub_client(&stub);
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
    let entity = stub_client(&stub).get_order(&key(1), &[]).await.unwrap();
    assert_eq!(entity.etag.as_str(), "W/\"from-header\"");
    assert_eq!(entity.fields[STATUS], "Backorder");
}

#[tokio::test]
async fn persistent_401_is_unauthorized_after_exactly_one_refresh() {
    let stub = Stub::start(Mode::Always401).await;
    let err = stub_client(&stub)
        .get_order(&key(1), &[])
        .await
        .unwrap_err();
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
    let client = stub_client(&stub);
    let err = client.get_order(&key(1), &[]).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    let paused = client.paused_for().unwrap();
    assert!(paused > Duration::from_secs(29), "{paused:?}");
}
