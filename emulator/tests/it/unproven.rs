//! Faults for the operator's "only proven writes count": a `/data` that
//! redirects, and PATCHes accepted without being applied.

use d365_emulator::{Faults, WriteSource};
use serde_json::json;

use crate::common::*;

const ORDER: &str = "SO-2025-0001";

#[tokio::test]
async fn redirect_answers_every_data_request_with_a_location_and_changes_nothing() {
    let env = start_faults(Faults {
        redirect_status: Some(301),
        redirect_to: "https://elsewhere.example/".into(),
        ..Faults::default()
    })
    .await;
    // A client that follows nothing, to see the answer itself.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let path = format!("{}?cross-company=true", key_path("usmf", ORDER));
    let before = env.emu.order("usmf", ORDER).unwrap();
    let patch = http
        .patch(env.data(&path))
        .bearer_auth(&env.token)
        .header("If-Match", "*")
        .json(&json!({"SalesOrderStatus": "Delivered"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 301);
    assert_eq!(
        patch.headers()["location"],
        format!("https://elsewhere.example/data/{path}").as_str()
    );
    assert_eq!(
        env.emu.order("usmf", ORDER).unwrap(),
        before,
        "nothing written"
    );
    assert!(env.emu.history().is_empty(), "{:?}", env.emu.history());
    let seen = env.emu.requests();
    let last = seen.last().unwrap();
    assert_eq!((last.method.as_str(), last.status), ("PATCH", 301));
    assert_eq!(last.sales_order_number.as_deref(), Some(ORDER));

    // Not a 3xx: no redirect; switched off at run time: served again.
    for status in [Some(200), None] {
        env.emu.set_faults(Faults {
            redirect_status: status,
            ..Faults::default()
        });
        let r = http
            .get(env.data(&path))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{status:?}");
    }
}

#[tokio::test]
async fn ignored_fields_are_accepted_but_not_applied() {
    let env = start_faults(Faults {
        ignore_writes: vec!["SalesOrderStatus".into()],
        ..Faults::default()
    })
    .await;
    let path = key_path("usmf", ORDER);
    let etag = env.etag("usmf", ORDER).await;
    let r = env
        .patch(&path, Some(&etag), json!({"SalesOrderStatus": "Delivered"}))
        .await;
    assert_eq!(r.status(), 204);
    let now = env.emu.order("usmf", ORDER).unwrap();
    assert_eq!(now["SalesOrderStatus"], "Backorder", "not applied");
    assert_eq!(
        now["@odata.etag"],
        etag.as_str(),
        "nothing applied: same version"
    );

    // With another field beside it, that field is applied and the ETag moves.
    let r = env
        .patch(
            &path,
            Some(&etag),
            json!({"SalesOrderStatus": "Delivered", "CustomerRequisitionNumber": "R-1"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let now = env.emu.order("usmf", ORDER).unwrap();
    assert_eq!(
        (&now["SalesOrderStatus"], &now["CustomerRequisitionNumber"]),
        (&json!("Backorder"), &json!("R-1"))
    );
    assert_ne!(now["@odata.etag"], etag.as_str());

    let history: Vec<_> = env
        .emu
        .history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client)
        .collect();
    assert_eq!(history.len(), 2);
    for w in &history {
        assert!(w.accepted && w.status == 204, "{w:?}");
        assert_eq!(w.ignored, ["SalesOrderStatus"], "{w:?}");
    }
    assert_eq!(history[0].etag_after.as_deref(), Some(etag.as_str()));
}

#[tokio::test]
async fn an_entity_answer_shows_the_values_kept_not_those_sent() {
    let env = start_faults(Faults {
        ignore_writes: vec!["SalesOrderStatus".into()],
        patch_returns_entity: true,
        ..Faults::default()
    })
    .await;
    let etag = env.etag("usmf", ORDER).await;
    let r = env
        .patch(
            &key_path("usmf", ORDER),
            Some(&etag),
            json!({"SalesOrderStatus": "Delivered"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["SalesOrderStatus"], "Backorder");
    assert_eq!(body["@odata.etag"], etag.as_str());
}
