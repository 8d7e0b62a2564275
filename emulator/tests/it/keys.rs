//! Issue 11 items 2 and 5: keys as F&O routes them (decoded twice, Web
//! API 404 for an unmatched route) and order numbers matched as F&O's
//! collation does (case-insensitively, unless switched).

use crate::common::*;
use d365_emulator::{Faults, WriteSource};
use serde_json::{Value, json};

const ONCE_ENCODED: &str = "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='O''Brien%2F1')";

/// Status, content type and JSON body of a GET.
async fn answer(env: &Env, path: &str) -> (u16, String, Value) {
    let r = env.get(path).await;
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ct, r.json().await.unwrap())
}

#[tokio::test]
async fn keys_encoded_twice_reach_their_orders() {
    let env = start().await;
    for number in ["SO/2025/0145", "A+B\\C", "100% 'x'"] {
        env.emu
            .put_order(json!({"dataAreaId": "usmf", "SalesOrderNumber": number}));
        let path = key_path("usmf", number);
        assert!(path.contains("%25"), "{path}");
        assert_eq!(env.get_json(&path).await["SalesOrderNumber"], number);
        let r = env
            .patch(&path, Some("*"), json!({"SalesOrderStatus": "Delivered"}))
            .await;
        assert_eq!(r.status(), 204, "{number}");
        let stored = env.emu.order("usmf", number).unwrap();
        assert_eq!(stored["SalesOrderStatus"], "Delivered", "{number}");
    }
}

#[tokio::test]
async fn a_once_encoded_slash_matches_no_route_in_the_web_api_shape() {
    let env = start().await;
    for path in [
        ONCE_ENCODED,
        "Customers",
        "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='A%5CB')",
    ] {
        let (status, ct, body) = answer(&env, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(ct, "application/json; charset=utf-8", "{path}");
        let message = body["Message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("No HTTP resource was found that matches the request URI"),
            "{path}: {body}"
        );
        assert!(body.get("error").is_none(), "{path}: {body}");
    }
    // A PATCH too; nothing is written.
    let r = env
        .patch(
            ONCE_ENCODED,
            Some("*"),
            json!({"SalesOrderStatus": "Canceled"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        env.emu.order("usmf", "O'Brien/1").unwrap()["SalesOrderStatus"],
        "Delivered"
    );
    // An order that does not exist is OData's own 404, not a route's.
    let (status, ct, body) = answer(&env, &key_path("usmf", "SO-NOPE")).await;
    assert_eq!(status, 404);
    assert!(
        ct.starts_with("application/json; odata.metadata=minimal"),
        "{ct}"
    );
    assert!(body["error"]["innererror"]["message"].is_string(), "{body}");
    assert!(body.get("Message").is_none());
}

#[tokio::test]
async fn order_numbers_match_case_insensitively_by_default() {
    let env = start().await;
    let lower = key_path("usmf", "so-2025-0001");
    assert_eq!(
        env.get_json(&lower).await["SalesOrderNumber"],
        "SO-2025-0001"
    );
    let r = env
        .patch(&lower, Some("*"), json!({"SalesOrderStatus": "Canceled"}))
        .await;
    assert_eq!(r.status(), 204);
    let stored = env.emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(stored["SalesOrderStatus"], "Canceled");
    assert_eq!(
        stored["SalesOrderNumber"], "SO-2025-0001",
        "keeps its spelling"
    );
    let w = env
        .emu
        .history()
        .into_iter()
        .find(|w| w.source == WriteSource::Client)
        .unwrap();
    assert_eq!(
        w.sales_order_number, "SO-2025-0001",
        "journal names the order"
    );
}

#[tokio::test]
async fn order_numbers_match_exactly_when_switched() {
    let env = start_faults(Faults {
        case_sensitive_order_numbers: true,
        ..Faults::default()
    })
    .await;
    let lower = key_path("usmf", "so-2025-0001");
    assert_eq!(env.get(&lower).await.status(), 404);
    let r = env
        .patch(&lower, Some("*"), json!({"SalesOrderStatus": "Canceled"}))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        env.get(&key_path("usmf", "SO-2025-0001")).await.status(),
        200
    );
}
