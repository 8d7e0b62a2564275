//! The paged collection read behind `export`, against the emulator with a
//! small page size (so paging is real) and a stub whose next link leaves.

use crate::common::*;
use crate::stub::{Mode, Stub};
use d365_emulator::{Config, Emulator, generate_orders};
use sales_order_operator::api::SalesStatus;
use sales_order_operator::d365::{D365Client, D365Error, RequestKind};
use sales_order_operator::export::{self, Collected};
use sales_order_operator::reconcile::FieldNames;
use serde_json::json;

const NAMES: FieldNames<'static> = FieldNames {
    sales_status: "SalesOrderStatus",
    delivery_date: "ConfirmedReceiptDate",
};

const DELIVERED: &str =
    "SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Delivered'";

/// 25 generated orders (Backorder) with `delivered` of them made
/// Delivered, plus one Delivered order of company demf; pages of 4.
async fn emulator_paged(delivered: usize) -> Emulator {
    let emu = Emulator::start(Config {
        orders: generate_orders(25, 1),
        page_size: 4,
        ..Config::default()
    })
    .await
    .expect("emulator starts");
    for n in 1..=delivered {
        let k = key(n as u32);
        let mut order = emu.order(&k.data_area_id, &k.sales_order_number).unwrap();
        order[STATUS] = json!("Delivered");
        emu.put_order(order);
    }
    emu.put_order(
        json!({"dataAreaId": "demf", "SalesOrderNumber": "DE/7", STATUS: "Delivered",
        "ConfirmedReceiptDate": "2025-03-01T12:00:00Z"}),
    );
    emu
}

#[tokio::test]
async fn paged_read_follows_next_links_with_a_qualified_enum_filter() {
    let emu = emulator_paged(10).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let client = D365Client::new(settings(&emu), recorder.clone()).unwrap();
    let mut pages = client
        .order_pages(&export::select(NAMES), Some(DELIVERED))
        .unwrap();
    let mut seen = Vec::new();
    let got = export::collect(&mut pages, NAMES, |c: &Collected| {
        seen.push((c.pages, c.read))
    })
    .await
    .unwrap();
    // 11 matching rows in pages of 4: three requests, progress after each.
    assert_eq!(seen, [(1, 4), (2, 8), (3, 11)]);
    assert_eq!(got.rows.len(), 11, "{:?}", got.skipped);
    assert!(
        got.rows
            .iter()
            .all(|r| r.sales_status == SalesStatus::Delivered)
    );
    let demf = got
        .rows
        .iter()
        .find(|r| r.key.data_area_id == "demf")
        .unwrap();
    assert_eq!(demf.delivery_date, Some(jiff::civil::date(2025, 3, 1)));
    let gets: Vec<_> = recorder
        .events()
        .into_iter()
        .filter(|e| e.kind == RequestKind::Entity)
        .collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(
        gets.iter()
            .all(|e| e.method == "GET" && e.status == Some(200))
    );
    assert_eq!(count(&emu, "PATCH"), 0);
}

#[tokio::test]
async fn select_and_cross_company_are_sent() {
    let emu = emulator_paged(0).await;
    let client = D365Client::new(settings(&emu), std::sync::Arc::new(Recorder::default())).unwrap();
    let mut pages = client
        .order_pages(
            &["dataAreaId", "SalesOrderNumber"],
            Some("SalesOrderNumber eq 'DE/7'"),
        )
        .unwrap();
    let rows = pages.next_page().await.unwrap().unwrap();
    assert_eq!(rows.len(), 1, "found across companies: {rows:?}");
    assert_eq!(
        rows[0].keys().collect::<Vec<_>>(),
        ["SalesOrderNumber", "dataAreaId"]
    );
    assert!(pages.next_page().await.unwrap().is_none());
}

#[tokio::test]
async fn an_unqualified_enum_literal_is_d365s_refusal() {
    let emu = emulator_paged(1).await;
    let client = D365Client::new(settings(&emu), std::sync::Arc::new(Recorder::default())).unwrap();
    let mut pages = client
        .order_pages(
            &export::select(NAMES),
            Some("SalesOrderStatus eq 'Delivered'"),
        )
        .unwrap();
    let err = pages.next_page().await.unwrap_err();
    // D365's own words reach the user, who can then qualify the literal.
    assert!(
        matches!(&err, D365Error::Rejected { status: 400, message }
            if message.contains("incompatible types")),
        "{err:?}"
    );
    assert_eq!(pages.pages(), 0);
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed() {
    let stub = Stub::start(Mode::NextLinkElsewhere).await;
    let client = stub.client(None);
    let mut pages = client.order_pages(&["dataAreaId"], None).unwrap();
    let err = pages.next_page().await.unwrap_err();
    assert!(matches!(err, D365Error::InvalidResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("leaves the environment"), "{err}");
    assert!(
        pages.next_page().await.unwrap().is_none(),
        "nothing left to follow"
    );
    assert_eq!(
        stub.seen().len(),
        1,
        "the other origin (same server) was never asked"
    );
}
