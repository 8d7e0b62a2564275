//! Bulk reads against the emulator over loopback: with batching on, many
//! concurrent `get_order` calls leave as a few collection GETs with an
//! `or` chain, each caller gets its own row and ETag, a missing order is
//! `NotFound` for its caller only, and awkward keys survive the `$filter`.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use d365_emulator::{Config, Emulator, generate_orders};
use futures::future::join_all;
use sales_order_operator::d365::{BatchSettings, D365Client, D365Error, OrderKey};
use serde_json::json;

fn bulk(emu: &Emulator) -> D365Client {
    let mut s = settings(emu);
    s.batch = Some(BatchSettings {
        max_operations: 20,
        window: Duration::from_millis(50),
    });
    D365Client::new(s, Arc::new(Recorder::default())).unwrap()
}

/// Collection GETs (a single GET addresses `Set(key)`).
fn bulk_gets(emu: &Emulator) -> usize {
    data_requests(emu)
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains('('))
        .count()
}

async fn read_all(client: &D365Client, keys: &[OrderKey]) -> Vec<Result<String, D365Error>> {
    let reads = keys.iter().map(|k| async move {
        let entity = client.get_order(k, &[STATUS]).await?;
        let fields: Vec<&String> = entity.fields.keys().collect();
        assert_eq!(fields, [STATUS], "{k}: only the fields asked for");
        Ok(entity.etag.as_str().to_owned())
    });
    join_all(reads).await
}

#[tokio::test]
async fn hundred_concurrent_reads_take_a_few_gets_with_each_etag() {
    let emu = emulator(120).await;
    let client = bulk(&emu);
    let keys: Vec<OrderKey> = (1..=100).map(key).collect();
    let results = read_all(&client, &keys).await;
    for (k, r) in keys.iter().zip(&results) {
        assert_eq!(r.as_ref().unwrap(), &emu_etag(&emu, k), "{k}");
    }
    let gets = bulk_gets(&emu);
    assert!((1..=4).contains(&gets), "{gets} collection GETs");
    assert_eq!(count(&emu, "GET"), gets, "no single GETs");
}

#[tokio::test]
async fn a_missing_order_is_not_found_only_for_its_caller() {
    let emu = emulator(10).await;
    let client = bulk(&emu);
    let mut keys: Vec<OrderKey> = (1..=10).map(key).collect();
    keys.insert(4, key(9999));
    let results = read_all(&client, &keys).await;
    for (k, r) in keys.iter().zip(&results) {
        if *k == key(9999) {
            assert!(matches!(r, Err(D365Error::NotFound { .. })), "{r:?}");
        } else {
            assert_eq!(r.as_ref().unwrap(), &emu_etag(&emu, k), "{k}");
        }
    }
    assert_eq!(bulk_gets(&emu), 1);
}

#[tokio::test]
async fn keys_with_quote_slash_and_other_case_are_read_in_bulk() {
    let emu = emulator(3).await;
    let numbers = ["O'BRIEN/1", "100% SO+1\\2", "SO&2=3#4"];
    for number in numbers {
        emu.put_order(json!({"dataAreaId": "usmf", "SalesOrderNumber": number}));
    }
    let client = bulk(&emu);
    let mut keys: Vec<OrderKey> = numbers.iter().map(|n| OrderKey::new("USMF", *n)).collect();
    keys.push(key(1));
    // The order number in another case finds the order, as F&O's collation.
    keys.push(OrderKey::new("usmf", "o'brien/1"));
    let results = read_all(&client, &keys).await;
    for (k, r) in keys.iter().zip(&results) {
        assert_eq!(r.as_ref().unwrap(), &emu_etag(&emu, k), "{k}");
    }
    assert_eq!(bulk_gets(&emu), 1);
}

#[tokio::test]
async fn pages_are_followed_to_every_row() {
    let emu = Emulator::start(Config {
        orders: generate_orders(40, 1),
        page_size: 7,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = bulk(&emu);
    let keys: Vec<OrderKey> = (1..=30).map(key).collect();
    let results = read_all(&client, &keys).await;
    for (k, r) in keys.iter().zip(&results) {
        assert_eq!(r.as_ref().unwrap(), &emu_etag(&emu, k), "{k}");
    }
    let gets = bulk_gets(&emu);
    assert!(gets >= 30usize.div_ceil(7), "{gets} GETs: every page read");
}

#[tokio::test]
async fn a_failed_bulk_read_gives_its_callers_a_single_gets_error() {
    let emu = emulator(5).await;
    let client = bulk(&emu);
    client.authenticate().await.unwrap();
    let keys: Vec<OrderKey> = (1..=5).map(key).collect();
    emu.set_faults(d365_emulator::Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Default::default()
    });
    for r in read_all(&client, &keys).await {
        assert!(
            matches!(
                r,
                Err(D365Error::Unavailable {
                    status: Some(503),
                    ..
                })
            ),
            "{r:?}"
        );
    }
    emu.set_faults(d365_emulator::Faults {
        throttle_retry_after: Some(30),
        ..Default::default()
    });
    for r in read_all(&client, &keys).await {
        assert!(matches!(r, Err(D365Error::Throttled { .. })), "{r:?}");
    }
    assert!(client.paused_for().is_some(), "a 429 pauses the connection");
    // Reads queued during the pause are refused at once, not after it.
    let started = std::time::Instant::now();
    for r in read_all(&client, &keys).await {
        assert!(matches!(r, Err(D365Error::Throttled { .. })), "{r:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Late binding: reads that arrive one after another while the limiter
/// makes the waiter wait (1 request/s) leave together in the request it
/// was waiting for. Had the waiter taken its orders before waiting, the
/// second read would go alone and the rest in a third GET.
#[tokio::test]
async fn reads_that_queue_while_the_budget_waits_share_one_get() {
    let emu = emulator(20).await;
    let client = one_request_a_second(&emu);
    client.get_order(&key(1), &[STATUS]).await.unwrap();
    assert_eq!(bulk_gets(&emu), 1);
    // The next second's request is not due yet: these arrive while its
    // waiter waits, 20 ms apart (the gaps are the scenario, not a wait).
    let reads = (2..=10).map(|n| {
        let client = &client;
        async move {
            tokio::time::sleep(Duration::from_millis(20 * u64::from(n - 2))).await;
            client.get_order(&key(n), &[STATUS]).await
        }
    });
    let results = join_all(reads).await;
    for (n, r) in (2..=10).zip(&results) {
        assert_eq!(r.as_ref().unwrap().etag.as_str(), emu_etag(&emu, &key(n)));
    }
    assert_eq!(bulk_gets(&emu), 2, "the nine reads in one GET");
}
