//! Issue 4 item 8: the admin API and the library handle.

use crate::common::*;
use d365_emulator::{Faults, WriteRecord};
use serde_json::{Value, json};

#[tokio::test]
async fn admin_http_api() {
    let env = start().await;
    let c = &env.http;
    // Orders: list, upsert, single.
    let list: Vec<Value> = env.admin_get("orders").await;
    assert_eq!(list.len(), 8);
    let r = c.put(env.admin("orders")).json(&json!([{"dataAreaId": "USMF", "SalesOrderNumber": "SO-NEW", "SalesOrderStatus": "Delivered"}])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let one: Value = env.admin_get("orders/usmf/SO-NEW").await;
    assert_eq!(one["SalesOrderStatus"], "Delivered");
    assert!(one["@odata.etag"].is_string());
    assert_eq!(
        env.get_json(&key_path("usmf", "SO-NEW")).await["SalesOrderStatus"],
        "Delivered"
    );
    // External write via admin changes the ETag.
    let before = env.etag("usmf", "SO-NEW").await;
    let r: Value = json_of(
        c.post(env.admin("orders/usmf/SO-NEW/external-write"))
            .json(&json!({"CustomerRequisitionNumber": "EXT"})),
    )
    .await;
    assert_ne!(r["etag"].as_str().unwrap(), before);
    // Faults round-trip.
    let r = c
        .put(env.admin("faults"))
        .json(&json!({"conflictStatus": 409, "maxRps": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f: Faults = env.admin_get("faults").await;
    assert_eq!(f.conflict_status, 409);
    assert_eq!(f.max_rps, Some(1000));
    assert_eq!(
        f.final_statuses,
        vec!["Invoiced", "Canceled"],
        "unspecified fields keep defaults"
    );
    assert_eq!(env.emu.faults().conflict_status, 409);
    // A stale PATCH then shows in counters, requests and history.
    let r = env
        .patch(
            &key_path("usmf", "SO-NEW"),
            Some(&before),
            json!({"SalesOrderStatus": "Invoiced"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let counters: Value = env.admin_get("counters").await;
    assert_eq!(counters["PATCH 409"], 1);
    assert_eq!(counters["POST 200"], 1, "the token request");
    let tokens: Value = env.admin_get("token-requests").await;
    assert_eq!(tokens["tokenRequests"], 1);
    let reqs: Vec<Value> = env.admin_get("requests").await;
    let last = reqs.last().unwrap();
    assert_eq!(last["method"], "PATCH");
    assert_eq!(last["status"], 409);
    assert_eq!(last["salesOrderNumber"], "SO-NEW");
    assert_eq!(last["ifMatch"], before.as_str());
    let hist: Vec<WriteRecord> = env.admin_get("history").await;
    let sources: Vec<String> = hist
        .iter()
        .map(|w| {
            serde_json::to_value(w.source)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sources, vec!["admin", "external", "client"]);
    assert!(!hist[2].accepted);
    // Revoke tokens.
    assert_eq!(
        c.post(env.admin("revoke-tokens"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(env.get(&key_path("usmf", "SO-NEW")).await.status(), 401);
    // Reset: initial orders back, journal cleared.
    assert_eq!(
        c.post(env.admin("reset")).send().await.unwrap().status(),
        204
    );
    assert!(env.emu.order("usmf", "SO-NEW").is_none());
    assert!(env.emu.history().is_empty());
    assert!(env.emu.requests().is_empty());
    // ?replace=true replaces the whole set.
    c.put(env.admin("orders?replace=true"))
        .json(&json!([{"dataAreaId": "usmf", "SalesOrderNumber": "ONLY"}]))
        .send()
        .await
        .unwrap();
    let list: Vec<Value> = env.admin_get("orders").await;
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn library_handle() {
    let env = start().await;
    let e0 = env.emu.order("USMF", "SO-2025-0001").unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    env.emu.put_order(json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-2025-0001", "SalesOrderStatus": "Delivered"}));
    let e1 = env.emu.order("usmf", "SO-2025-0001").unwrap()["@odata.etag"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(e0, e1, "put_order gives a new ETag");
    let fields = json!({"CustomerRequisitionNumber": "Z"})
        .as_object()
        .unwrap()
        .clone();
    let e2 = env
        .emu
        .external_write("usmf", "SO-2025-0001", fields.clone())
        .unwrap();
    assert_ne!(e1, e2);
    assert!(env.emu.external_write("usmf", "NOPE", fields).is_none());
    env.get(&key_path("usmf", "SO-2025-0001")).await;
    assert_eq!(env.emu.requests().len(), 2, "token + GET");
    env.emu.reset();
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0001").unwrap()["SalesOrderStatus"],
        "Backorder"
    );
    assert_eq!(env.emu.token_requests(), 0);
    let url = env.emu.url();
    env.emu.clone().shutdown().await;
    assert!(
        reqwest::get(format!("{url}/_emulator/orders"))
            .await
            .is_err()
    );
}
