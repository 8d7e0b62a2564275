//! Deterministic realistic orders for tests, the demo and the bench.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::entity::UNSET_DATE;

const CUSTOMERS: &[&str] = &[
    "US-001", "US-002", "US-003", "US-004", "US-005", "US-008", "US-011", "US-027",
];
const MODES: &[&str] = &["10", "20", "30", "40", "70"];
const TERMS: &[&str] = &["Net10", "Net30", "Net45", "COD"];

/// Orders `SO-2025-0001..SO-2025-{n:04}` in company `usmf`, all
/// `Backorder`, with plausible customers, dates and references; the same
/// seed gives the same orders.
pub fn generate_orders(n: usize, seed: u64) -> Vec<Value> {
    orders_iter(n, seed).collect()
}

/// The same orders one at a time, so the store can load many without
/// holding them all as JSON first.
pub fn orders_iter(n: usize, seed: u64) -> impl Iterator<Item = Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = jiff::civil::date(2025, 1, 6);
    (1..=n).map(move |i| {
        let customer = CUSTOMERS[rng.random_range(0..CUSTOMERS.len())];
        let ship = base
            .checked_add(jiff::Span::new().days(rng.random_range(0..120)))
            .unwrap_or(base);
        let receipt = ship
            .checked_add(jiff::Span::new().days(rng.random_range(1..6)))
            .unwrap_or(ship);
        let confirmed = rng.random_bool(0.3);
        let d = |x: jiff::civil::Date| format!("{x}T12:00:00Z");
        json!({
            "dataAreaId": "usmf",
            "SalesOrderNumber": format!("SO-2025-{i:04}"),
            "SalesOrderName": format!("Order {i} for {customer}"),
            "SalesOrderStatus": "Backorder",
            "SalesOrderProcessingStatus": if confirmed { "Confirmed" } else { "None" },
            "OrderingCustomerAccountNumber": customer,
            "InvoiceCustomerAccountNumber": customer,
            "CurrencyCode": "USD",
            "CustomerRequisitionNumber": format!("PO-{}", rng.random_range(10_000..99_999)),
            "CustomersOrderReference": "",
            "RequestedShippingDate": d(ship),
            "ConfirmedShippingDate": if confirmed { d(ship) } else { UNSET_DATE.to_string() },
            "RequestedReceiptDate": d(receipt),
            "ConfirmedReceiptDate": if confirmed { d(receipt) } else { UNSET_DATE.to_string() },
            "DeliveryModeCode": MODES[rng.random_range(0..MODES.len())],
            "PaymentTermsName": TERMS[rng.random_range(0..TERMS.len())],
        })
    })
}
