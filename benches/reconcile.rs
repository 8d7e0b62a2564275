//! Reconcile-attempt figures against the emulator over loopback HTTP:
//! D365 requests per attempt (in sync, changed, changed with PATCHes
//! coalesced into `$batch`, conflicted) and attempts per second through one
//! shared connection client. Prints figures; asserts
//! nothing about time. `cargo bench --bench reconcile` (or `make bench`).

use std::sync::Arc;
use std::time::Instant;

use d365_emulator::{Config, Emulator, Faults, generate_orders};
use futures::StreamExt;
use sales_order_operator::api::{ConnectionRef, Policy, SalesOrderStatusSpec, SalesStatus};
use sales_order_operator::controller::sync::{Attempt, OrderRules, sync_order};
use sales_order_operator::d365::{BatchSettings, ConnectionSettings, D365Client, NoopObserver};

const ORDERS: usize = 5_000;
const CONCURRENCY: usize = 64;

fn spec(n: usize) -> SalesOrderStatusSpec {
    SalesOrderStatusSpec {
        connection_ref: ConnectionRef {
            name: "usmf".into(),
        },
        data_area_id: "USMF".into(),
        sales_order_number: format!("SO-2025-{n:04}"),
        sales_status: SalesStatus::Delivered,
        delivery_date: Some("2025-02-08".into()),
        policy: Policy::Enforce,
        suspend: false,
    }
}

async fn round(name: &str, emu: &Emulator, client: &D365Client, rules: &OrderRules) {
    let before = emu.requests().len();
    let started = Instant::now();
    let reasons: Vec<_> = futures::stream::iter(1..=ORDERS)
        .map(|n| async move {
            sync_order(client, rules, &spec(n), Attempt::new(1))
                .await
                .outcome
                .reason()
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    let requests = emu.requests()[before..].to_vec();
    let count = |m: &str| {
        let data = requests.iter().filter(|r| r.path.starts_with("/data"));
        data.filter(|r| r.method == m).count() as f64 / ORDERS as f64
    };
    let mut by_reason = std::collections::BTreeMap::new();
    for r in reasons {
        *by_reason.entry(r.as_str()).or_insert(0) += 1;
    }
    println!(
        "{name:<17} {ORDERS} attempts in {:>6.2}s = {:>7.0}/s | per attempt: {:.2} GET, {:.2} PATCH, {:.3} $batch POST | outcomes {by_reason:?}",
        took.as_secs_f64(),
        ORDERS as f64 / took.as_secs_f64(),
        count("GET"),
        count("PATCH"),
        count("POST"),
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = Config { orders: generate_orders(ORDERS, 3), ..Config::default() };
        let emu = Emulator::start(config).await.unwrap();
        let mut settings = ConnectionSettings::emulator(&emu.url());
        settings.max_requests_per_second = 100_000;
        settings.max_concurrent_requests = CONCURRENCY as u32;
        let client = D365Client::new(settings.clone(), Arc::new(NoopObserver)).unwrap();
        settings.batch = Some(BatchSettings { max_operations: 100, window: std::time::Duration::from_millis(20) });
        let batched = D365Client::new(settings, Arc::new(NoopObserver)).unwrap();
        let rules = OrderRules {
            status_field: "SalesOrderStatus".into(),
            date_field: "ConfirmedReceiptDate".into(),
            final_statuses: vec![SalesStatus::Invoiced, SalesStatus::Canceled],
            capabilities: Default::default(),
        };
        println!("reconcile attempts through one connection client, {CONCURRENCY} at a time, emulator in-process on loopback");
        round("changed", &emu, &client, &rules).await;
        round("in sync", &emu, &client, &rules).await;
        println!("token requests for {} attempts: {}", 2 * ORDERS, emu.token_requests());
        // Orders back to their initial state, so every attempt writes again.
        emu.reset();
        round("changed (batched)", &emu, &batched, &rules).await;
        emu.reset();
        emu.set_faults(Faults { conflict_rate: 1.0, ..Faults::default() });
        round("conflicted", &emu, &client, &rules).await;
    });
}
