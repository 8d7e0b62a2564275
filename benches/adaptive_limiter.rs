//! Issue 12 item 2: does the adaptive limiter find D365's capacity? The
//! D365 client alone (no Kubernetes) against the emulator's capacity model
//! (C requests in parallel at a base latency, slower past C, 429 +
//! `Retry-After` past 2 C in flight). Modelled capacity = C / base latency
//! requests per second: no client gets more answers than that. Each order
//! is a GET then a PATCH; a throttled step waits out the connection's pause
//! and is sent again, as the operator's requeue does. Prints, per limiter:
//! answered requests per second against the capacity, the share of
//! requests answered 429, and the time. `cargo bench --bench
//! adaptive_limiter` (or `make bench`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use d365_emulator::{CapacityModel, Config, Emulator, Faults, generate_orders};
use futures::StreamExt;
use sales_order_operator::d365::{
    ConnectionSettings, D365Client, D365Error, NoopObserver, OrderKey,
};
use serde_json::{Map, Value, json};

const CAPACITY: u32 = 16;
const BASE_LATENCY_MS: u64 = 50;
/// More orders in progress than any limit lets out: demand never runs dry.
const IN_PROGRESS: usize = 128;

fn capacity_per_second() -> f64 {
    f64::from(CAPACITY) * 1000.0 / BASE_LATENCY_MS as f64
}

/// One step, sent again after each 429 pause; false if it failed otherwise.
async fn with_retries<T, F: Future<Output = Result<T, D365Error>>>(
    mut step: impl FnMut() -> F,
) -> Option<T> {
    loop {
        match step().await {
            Ok(v) => return Some(v),
            Err(D365Error::Throttled { retry_after, .. }) => {
                tokio::time::sleep(retry_after.max(Duration::from_millis(10))).await;
            }
            Err(_) => return None,
        }
    }
}

async fn order(client: &D365Client, n: usize, changes: &Map<String, Value>) -> bool {
    let key = OrderKey::new("USMF", format!("SO-2025-{n:04}"));
    let Some(entity) = with_retries(|| client.get_order(&key, &["SalesOrderStatus"])).await else {
        return false;
    };
    with_retries(|| client.patch_order(&key, &entity.etag, changes))
        .await
        .is_some()
}

async fn round(name: &str, emu: &Emulator, orders: usize, tune: impl Fn(&mut ConnectionSettings)) {
    emu.reset();
    let mut settings = ConnectionSettings::emulator(&emu.url());
    tune(&mut settings);
    let client = D365Client::new(settings.clone(), Arc::new(NoopObserver)).unwrap();
    client.authenticate().await.unwrap();
    let changes: Map<String, Value> = json!({"ConfirmedReceiptDate": "2025-02-08T12:00:00Z"})
        .as_object()
        .unwrap()
        .clone();
    let started = Instant::now();
    let done: Vec<bool> = futures::stream::iter(1..=orders)
        .map(|n| order(&client, n, &changes))
        .buffer_unordered(IN_PROGRESS)
        .collect()
        .await;
    let took = started.elapsed().as_secs_f64();
    let data: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/data"))
        .collect();
    let throttled = data.iter().filter(|r| r.status == 429).count();
    let answered = data.len() - throttled;
    let per_second = answered as f64 / took;
    println!(
        "{name:<34} {orders:>5} orders {:>6.1}s | {per_second:>6.0} req/s = {:>5.1} % of capacity | {:>5.2} % throttled ({throttled}/{}) | limit at end {} | failed {}",
        took,
        100.0 * per_second / capacity_per_second(),
        100.0 * throttled as f64 / data.len().max(1) as f64,
        data.len(),
        client.concurrency_limit(),
        done.iter().filter(|ok| !**ok).count(),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let orders = 2_000;
        let config = Config {
            orders: generate_orders(orders, 3),
            faults: Faults {
                capacity: Some(CapacityModel {
                    concurrent: CAPACITY,
                    base_latency_ms: BASE_LATENCY_MS,
                    throttle_in_flight: 2 * CAPACITY,
                    retry_after_secs: 1,
                }),
                ..Faults::default()
            },
            ..Config::default()
        };
        let emu = Emulator::start(config).await.unwrap();
        println!(
            "emulator capacity model: {CAPACITY} in parallel at {BASE_LATENCY_MS} ms, 429 past {} in flight: capacity {:.0} req/s; each order GET + PATCH, {IN_PROGRESS} orders in progress",
            2 * CAPACITY,
            capacity_per_second()
        );
        round("fixed, defaults (20/s, 8)", &emu, 200, |_| {}).await;
        // Few orders: each 429 pauses the connection a second.
        round("fixed, 64 in flight (too many)", &emu, 300, |s| {
            s.max_requests_per_second = 10_000;
            s.max_concurrent_requests = 64;
        })
        .await;
        round("fixed, 16 in flight (tuned)", &emu, orders, |s| {
            s.max_requests_per_second = 10_000;
            s.max_concurrent_requests = CAPACITY;
        })
        .await;
        round("adaptive, ceiling 64", &emu, orders, |s| {
            s.max_requests_per_second = 10_000;
            s.max_concurrent_requests = 64;
            s.adaptive_concurrency = true;
        })
        .await;
    });
}
