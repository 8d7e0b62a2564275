//! Issue 4 items 2 and 3: entity by key, ETags, PATCH semantics.

use crate::common::*;
use d365_emulator::{Faults, UNSET_DATE, WriteSource};
use serde_json::{Value, json};

#[tokio::test]
async fn key_grammar_and_case() {
    let env = start().await;
    let v = env.get_json(&key_path("USMF", "SO-2025-0003")).await;
    assert_eq!(v["dataAreaId"], "usmf", "dataAreaId answered lower-case");
    assert_eq!(v["SalesOrderNumber"], "SO-2025-0003");
    assert_eq!(v["SalesOrderStatus"], "Backorder");
    for f in [
        "SalesOrderProcessingStatus",
        "RequestedShippingDate",
        "ConfirmedShippingDate",
        "RequestedReceiptDate",
        "ConfirmedReceiptDate",
        "CustomerRequisitionNumber",
        "OrderingCustomerAccountNumber",
        "CurrencyCode",
    ] {
        assert!(v.get(f).is_some(), "{f} present");
    }
    // Key order reversed.
    let v2 = env
        .get_json("SalesOrderHeadersV2(SalesOrderNumber='SO-2025-0003',dataAreaId='Usmf')")
        .await;
    assert_eq!(v2["SalesOrderNumber"], "SO-2025-0003");
    // Doubled quote and percent-encoded segment (quote, slash).
    let v = env.get_json(&key_path("usmf", "O'Brien/1")).await;
    assert_eq!(v["SalesOrderNumber"], "O'Brien/1");
    let v = env
        .get_json(
            "SalesOrderHeadersV2(dataAreaId=%27usmf%27,SalesOrderNumber=%27O%27%27Brien%252F1%27)",
        )
        .await;
    assert_eq!(v["SalesOrderNumber"], "O'Brien/1");
    // Missing, unknown and positional key parts: 400 with D365's error shape.
    for bad in [
        "SalesOrderHeadersV2(dataAreaId='usmf')",
        "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='SO-2025-0001',Foo='x')",
        "SalesOrderHeadersV2('SO-2025-0001')",
        "SalesOrderHeadersV2(dataareaid='usmf',SalesOrderNumber='SO-2025-0001')",
    ] {
        let r = env.get(bad).await;
        let (s, msg) = inner_message(r).await;
        assert_eq!(s, 400, "{bad}");
        assert!(!msg.is_empty());
    }
    // Unknown order → 404.
    assert_eq!(env.get(&key_path("usmf", "SO-NOPE")).await.status(), 404);
}

#[tokio::test]
async fn headers_dates_and_etag_header() {
    let env = start().await;
    env.emu
        .put_order(json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-D"}));
    let r = env.get(&key_path("usmf", "SO-D")).await;
    assert_eq!(
        r.headers()["content-type"],
        "application/json; odata.metadata=minimal"
    );
    assert_eq!(r.headers()["odata-version"], "4.0");
    let header_etag = r.headers()["etag"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ConfirmedReceiptDate"], UNSET_DATE);
    let etag = v["@odata.etag"].as_str().unwrap();
    assert!(etag.starts_with("W/\"") && etag.ends_with('"'));
    assert_eq!(header_etag, etag);
    env.emu.set_faults(Faults {
        get_etag_header: false,
        ..Faults::default()
    });
    let r = env.get(&key_path("usmf", "SO-D")).await;
    assert!(r.headers().get("etag").is_none());
}

#[tokio::test]
async fn cross_company() {
    let env = start().await;
    assert_eq!(env.get(&key_path("ussi", "SO-SI-1")).await.status(), 404);
    let v = env
        .get_json(&format!(
            "{}?cross-company=true",
            key_path("USSI", "SO-SI-1")
        ))
        .await;
    assert_eq!(v["dataAreaId"], "ussi");
    let r = env
        .patch(
            &key_path("ussi", "SO-SI-1"),
            None,
            json!({"SalesOrderStatus": "Delivered"}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn select() {
    let env = start().await;
    let v = env
        .get_json(&format!(
            "{}?$select=SalesOrderStatus,ConfirmedReceiptDate",
            key_path("usmf", "SO-2025-0001")
        ))
        .await;
    let keys: Vec<&String> = v
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with('@'))
        .collect();
    assert_eq!(keys.len(), 2, "{v}");
    assert!(v["@odata.etag"].is_string());
    assert_eq!(
        env.get(&format!(
            "{}?$select=Nope",
            key_path("usmf", "SO-2025-0001")
        ))
        .await
        .status(),
        400
    );
}

#[tokio::test]
async fn if_match_semantics_and_history() {
    let env = start().await;
    let path = key_path("usmf", "SO-2025-0001");
    let e1 = env.etag("usmf", "SO-2025-0001").await;
    // Matching If-Match → 204, empty body, ETag changes, only sent fields written.
    let before = env.get_json(&path).await;
    let r = env
        .patch(&path, Some(&e1), json!({"SalesOrderStatus": "Delivered"}))
        .await;
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let after = env.get_json(&path).await;
    let e2 = after["@odata.etag"].as_str().unwrap().to_string();
    assert_ne!(e1, e2);
    assert_eq!(after["SalesOrderStatus"], "Delivered");
    assert_eq!(
        after["CustomerRequisitionNumber"],
        before["CustomerRequisitionNumber"]
    );
    // Stale → 412 and nothing written.
    let r = env
        .patch(&path, Some(&e1), json!({"SalesOrderStatus": "Backorder"}))
        .await;
    assert_eq!(r.status(), 412);
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0001").unwrap()["SalesOrderStatus"],
        "Delivered"
    );
    // `*` matches any version.
    let r = env
        .patch(
            &path,
            Some("*"),
            json!({"ConfirmedReceiptDate": "2025-02-08T12:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    // Missing If-Match overwrites by default [obs].
    let r = env
        .patch(&path, None, json!({"CustomerRequisitionNumber": "X"}))
        .await;
    assert_eq!(r.status(), 204);
    // History: the stale write is refused with the If-Match it carried and the ETag then current.
    let h = env.emu.history();
    let stale: Vec<_> = h
        .iter()
        .filter(|w| w.if_match.as_deref() == Some(e1.as_str()) && !w.accepted)
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].status, 412);
    assert_eq!(stale[0].etag_before, e2);
    assert!(
        h.iter()
            .filter(|w| w.accepted && w.source == WriteSource::Client)
            .all(|w| w
                .if_match
                .as_deref()
                .is_none_or(|m| m == "*" || m == w.etag_before))
    );
}

#[tokio::test]
async fn conflict_409_and_required_if_match() {
    let env = start_faults(Faults {
        conflict_status: 409,
        require_if_match: true,
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0002");
    let e = env.etag("usmf", "SO-2025-0002").await;
    env.emu
        .external_write(
            "usmf",
            "SO-2025-0002",
            json!({"CustomerRequisitionNumber": "OTHER"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
    let (s, msg) = inner_message(
        env.patch(&path, Some(&e), json!({"SalesOrderStatus": "Delivered"}))
            .await,
    )
    .await;
    assert_eq!(s, 409);
    assert!(msg.contains("The record has been modified by another user."));
    assert_eq!(
        env.patch(&path, None, json!({"SalesOrderStatus": "Delivered"}))
            .await
            .status(),
        428
    );
    env.emu.set_faults(Faults {
        require_if_match: true,
        missing_if_match_status: 409,
        ..Faults::default()
    });
    assert_eq!(
        env.patch(&path, None, json!({"SalesOrderStatus": "Delivered"}))
            .await
            .status(),
        409
    );
    let ext = env
        .emu
        .history()
        .into_iter()
        .find(|w| w.source == WriteSource::External)
        .unwrap();
    assert!(ext.accepted);
}

#[tokio::test]
async fn bad_bodies_are_400() {
    let env = start().await;
    let path = key_path("usmf", "SO-2025-0001");
    for body in [
        json!({"Nope": 1}),
        json!({"SalesOrderNumber": "SO-X"}),
        json!({"dataAreaId": "ussi"}),
        json!({"SalesOrderStatus": "Shipped"}),
        json!({"ConfirmedReceiptDate": "tomorrow"}),
        json!([1]),
    ] {
        let (s, msg) = inner_message(env.patch(&path, Some("*"), body.clone()).await).await;
        assert_eq!(s, 400, "{body}");
        assert!(!msg.is_empty());
    }
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0001").unwrap()["SalesOrderNumber"],
        "SO-2025-0001"
    );
}

#[tokio::test]
async fn final_status_is_400_write_exception() {
    let env = start().await;
    let path = key_path("usmf", "SO-INV");
    let r = env
        .patch(&path, Some("*"), json!({"SalesOrderStatus": "Backorder"}))
        .await;
    assert_eq!(r.status(), 400, "current releases");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["innererror"]["type"],
        "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
    );
    assert!(
        v["error"]["innererror"]["message"]
            .as_str()
            .unwrap()
            .contains("Write failed")
    );
    // Other fields of a final order can still change.
    assert_eq!(
        env.patch(&path, Some("*"), json!({"CustomerRequisitionNumber": "R"}))
            .await
            .status(),
        204
    );
    // Older releases: 500, same body.
    env.emu.set_faults(Faults {
        validation_status: 500,
        ..Faults::default()
    });
    let r = env
        .patch(&path, Some("*"), json!({"SalesOrderStatus": "Backorder"}))
        .await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    let inner = &v["error"]["innererror"];
    assert!(
        inner["type"]
            .as_str()
            .unwrap()
            .ends_with("AxODataWriteException")
    );
    assert!(inner["message"].as_str().unwrap().contains("Infolog"));
    // Configurable: with no final statuses the transition is allowed.
    env.emu.set_faults(Faults {
        final_statuses: vec![],
        ..Faults::default()
    });
    assert_eq!(
        env.patch(&path, Some("*"), json!({"SalesOrderStatus": "Backorder"}))
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn patch_answer_variants_and_read_only_company() {
    let env = start_faults(Faults {
        patch_returns_entity: true,
        patch_etag_header: true,
        read_only_companies: vec!["USSI".into()],
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", "SO-2025-0004");
    let r = env
        .patch(&path, Some("*"), json!({"SalesOrderStatus": "Delivered"}))
        .await;
    assert_eq!(r.status(), 200);
    let header = r.headers()["etag"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["SalesOrderStatus"], "Delivered");
    assert_eq!(v["@odata.etag"], header.as_str());
    let r = env
        .patch(
            &format!("{}?cross-company=true", key_path("ussi", "SO-SI-1")),
            Some("*"),
            json!({"SalesOrderStatus": "Delivered"}),
        )
        .await;
    assert_eq!(r.status(), 403);
}

/// The journal names the writer (its User-Agent, single or in `$batch`)
/// and when the write took effect, so a test can tell a fenced replica's
/// late write from its successor's.
#[tokio::test]
async fn history_records_writer_and_time() {
    let env = start().await;
    let path = key_path("usmf", "SO-2025-0001");
    let etag = env.etag("usmf", "SO-2025-0001").await;
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = env
        .http
        .patch(env.data(&path))
        .bearer_auth(&env.token)
        .header("User-Agent", "replica-a")
        .header("If-Match", &etag)
        .json(&json!({"SalesOrderStatus": "Delivered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = env.emu.history();
    let write = h.last().unwrap();
    assert_eq!(write.agent.as_deref(), Some("replica-a"));
    assert!(write.at_ms >= before_ms, "{} < {before_ms}", write.at_ms);
}
