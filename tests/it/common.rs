//! Shared by the D365 client tests: emulator setup, settings, keys, and
//! readers of what the emulator recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use d365_emulator::{Config, Emulator, Faults, WriteSource, generate_orders};
use sales_order_operator::d365::{
    ConnectionSettings, D365Client, OperationEvent, OrderKey, RequestEvent, RequestObserver,
};
use serde_json::{Map, Value};

pub const STATUS: &str = "SalesOrderStatus";
pub const REQUISITION: &str = "CustomerRequisitionNumber";

#[derive(Default)]
pub struct Recorder(Mutex<Vec<RequestEvent>>, Mutex<Vec<OperationEvent>>);

impl RequestObserver for Recorder {
    fn observe(&self, event: &RequestEvent) {
        self.0.lock().unwrap().push(event.clone());
    }

    fn observe_operation(&self, event: &OperationEvent) {
        self.1.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<RequestEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The operations inside `$batch` answers, in the order answered.
    pub fn operations(&self) -> Vec<OperationEvent> {
        self.1.lock().unwrap().clone()
    }
}

pub fn settings(emu: &Emulator) -> ConnectionSettings {
    let mut s = ConnectionSettings::emulator(&emu.url());
    s.max_requests_per_second = 200;
    s.max_concurrent_requests = 16;
    s.request_timeout = Duration::from_secs(5);
    s
}

/// A batching client held to one request a second (and one at a time), so
/// a test can make bulk reads and batches wait for the budget.
pub fn one_request_a_second(emu: &Emulator) -> sales_order_operator::d365::D365Client {
    let mut s = settings(emu);
    s.max_requests_per_second = 1;
    s.max_concurrent_requests = 1;
    s.batch = Some(sales_order_operator::d365::BatchSettings {
        max_operations: 20,
        window: Duration::from_millis(1),
    });
    sales_order_operator::d365::D365Client::new(s, std::sync::Arc::new(Recorder::default()))
        .unwrap()
}

pub async fn emulator(orders: usize) -> Emulator {
    emulator_with(orders, Faults::default()).await
}

pub async fn emulator_with(orders: usize, faults: Faults) -> Emulator {
    Emulator::start(Config {
        orders: generate_orders(orders, 1),
        faults,
        ..Default::default()
    })
    .await
    .expect("emulator starts")
}

pub async fn setup(orders: usize) -> (Emulator, D365Client, Arc<Recorder>) {
    let emu = emulator(orders).await;
    let recorder = Arc::new(Recorder::default());
    let client = D365Client::new(settings(&emu), recorder.clone()).unwrap();
    (emu, client, recorder)
}

pub fn key(n: u32) -> OrderKey {
    OrderKey::new("USMF", format!("SO-2025-{n:04}"))
}

pub fn changes(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect()
}

pub fn emu_etag(emu: &Emulator, k: &OrderKey) -> String {
    emu.order(&k.data_area_id, &k.sales_order_number).unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn emu_field(emu: &Emulator, k: &OrderKey, field: &str) -> Value {
    emu.order(&k.data_area_id, &k.sales_order_number).unwrap()[field].clone()
}

/// Requests to `/data` (the emulator also records token requests).
pub fn data_requests(emu: &Emulator) -> Vec<d365_emulator::RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/data"))
        .collect()
}

pub fn count(emu: &Emulator, method: &str) -> usize {
    data_requests(emu)
        .iter()
        .filter(|r| r.method == method)
        .count()
}

pub fn client_writes(emu: &Emulator) -> Vec<d365_emulator::WriteRecord> {
    emu.history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client)
        .collect()
}
