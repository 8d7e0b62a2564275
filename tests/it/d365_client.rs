//! The D365 client against the emulator over real loopback HTTP, plus a
//! scripted stub for answers the emulator cannot give: reads, writes
//! and conflicts. Limits, auth and errors are in
//! d365_client_failures.rs.

use crate::common::*;
use d365_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, Faults};
use sales_order_operator::d365::{
    D365Client, D365Error, OrderKey, PatchOutcome, RequestKind, ResponseContext,
};
use serde_json::{Value, json};

#[tokio::test]
async fn get_returns_entity_and_body_etag() {
    let (emu, client, recorder) = setup(3).await;
    // No ETag header: the tag must come from the body's @odata.etag.
    emu.set_faults(Faults {
        get_etag_header: false,
        ..Default::default()
    });
    let k = key(2);
    let entity = client.get_order(&k, &[STATUS, REQUISITION]).await.unwrap();
    assert_eq!(entity.etag.as_str(), emu_etag(&emu, &k));
    assert!(entity.etag.is_weak());
    assert_eq!(entity.fields[STATUS], "Backorder");
    assert_eq!(entity.fields[REQUISITION], emu_field(&emu, &k, REQUISITION));
    assert!(entity.fields.keys().all(|f| !f.starts_with("@odata")));
    assert!(
        !entity.fields.contains_key("SalesOrderName"),
        "$select was sent"
    );

    let events = recorder.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].method, events[0].kind, events[0].status),
        ("POST", RequestKind::Token, Some(200))
    );
    assert_eq!(
        (events[1].method, events[1].kind, events[1].status),
        ("GET", RequestKind::Entity, Some(200))
    );
}

#[tokio::test]
async fn cross_company_and_awkward_keys_reach_the_order() {
    let (emu, client, _) = setup(1).await;
    // Not the default company (needs cross-company=true) and a number that
    // needs quote doubling and percent-encoding.
    let number = "SO 'Ü'/1#?";
    emu.put_order(json!({"dataAreaId": "demf", "SalesOrderNumber": number, STATUS: "Backorder"}));
    let k = OrderKey::new("DEMF", number);
    let entity = client.get_order(&k, &[STATUS]).await.unwrap();
    assert_eq!(
        entity.etag.as_str(),
        emu_etag(&emu, &OrderKey::new("demf", number))
    );
    client
        .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    let writes = client_writes(&emu);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].sales_order_number, number);
    assert!(writes[0].accepted);
}

#[tokio::test]
async fn happy_path_is_one_get_and_one_patch_with_if_match() {
    let (emu, client, _) = setup(3).await;
    // D365's observed answer: 204, the entity not sent back.
    emu.set_faults(Faults {
        honour_return_representation: false,
        ..Default::default()
    });
    let k = key(1);
    let entity = client.get_order(&k, &[STATUS]).await.unwrap();
    let outcome = client
        .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(outcome, PatchOutcome::NoContent { etag: None });
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    assert_eq!((count(&emu, "GET"), count(&emu, "PATCH")), (1, 1));
    assert_eq!(data_requests(&emu).len(), 2);
    let writes = client_writes(&emu);
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].if_match.as_deref(), Some(entity.etag.as_str()));
    assert_eq!(writes[0].fields, changes(&[(STATUS, "Delivered")]));
}

/// Reads order `k`'s ETag, then PATCHes its status to `status` with it.
async fn read_then_patch(client: &D365Client, k: &OrderKey, status: &str) -> PatchOutcome {
    let etag = client.get_order(k, &[]).await.unwrap().etag;
    client
        .patch_order(k, &etag, &changes(&[(STATUS, status)]))
        .await
        .unwrap()
}

/// The answer is the entity as written: `status` and the emulator's ETag.
fn assert_entity_written(emu: &Emulator, k: &OrderKey, outcome: &PatchOutcome, status: &str) {
    let PatchOutcome::Entity(entity) = outcome else {
        panic!("expected the entity, got {outcome:?}")
    };
    assert_eq!(entity.fields[STATUS], status);
    assert_eq!(entity.etag.as_str(), emu_etag(emu, k));
}

/// Every PATCH asks for the entity back (`Prefer: return=representation`):
/// a service that honours it answers 200 with the entity written, one
/// that ignores it (the emulator's strict profile) 204 as before.
#[tokio::test]
async fn a_patch_asks_for_the_entity_and_gets_it_where_honoured() {
    let (emu, client, _) = setup(3).await;
    let k = key(1);
    let outcome = read_then_patch(&client, &k, "Delivered").await;
    assert_entity_written(&emu, &k, &outcome, "Delivered");

    emu.set_faults(Faults {
        honour_return_representation: false,
        ..Default::default()
    });
    let outcome = read_then_patch(&client, &k, "Backorder").await;
    assert_eq!(outcome, PatchOutcome::NoContent { etag: None });
    assert_eq!(emu_field(&emu, &k, STATUS), "Backorder");
}

#[tokio::test]
async fn patch_answer_with_entity_or_etag_header_is_accepted() {
    let (emu, client, _) = setup(3).await;
    let k = key(1);
    emu.set_faults(Faults {
        patch_returns_entity: true,
        honour_return_representation: false,
        ..Default::default()
    });
    let outcome = read_then_patch(&client, &k, "Delivered").await;
    assert_entity_written(&emu, &k, &outcome, "Delivered");

    emu.set_faults(Faults {
        patch_etag_header: true,
        honour_return_representation: false,
        ..Default::default()
    });
    let outcome = read_then_patch(&client, &k, "Backorder").await;
    assert_eq!(outcome.etag().unwrap().as_str(), emu_etag(&emu, &k));
    assert!(matches!(outcome, PatchOutcome::NoContent { .. }));
}

async fn stale_etag_conflicts_then_fresh_etag_wins(conflict_status: u16) {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        conflict_status,
        ..Default::default()
    });
    let k = key(3);
    let stale = client.get_order(&k, &[STATUS]).await.unwrap().etag;
    emu.external_write(
        "usmf",
        &k.sales_order_number,
        changes(&[("SalesOrderName", "edited")]),
    )
    .unwrap();
    let err = client
        .patch_order(&k, &stale, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.status_code(), Some(conflict_status));
    let D365Error::Conflict {
        sent_etag, message, ..
    } = &err
    else {
        unreachable!()
    };
    assert_eq!(sent_etag, stale.as_str());
    assert!(message.contains("modified by another user"), "{message}");
    assert!(message.contains(&k.to_string()), "{message}");
    assert_eq!(emu_field(&emu, &k, STATUS), "Backorder");

    let fresh = client.get_order(&k, &[STATUS]).await.unwrap().etag;
    assert_ne!(fresh, stale);
    client
        .patch_order(&k, &fresh, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    let writes = client_writes(&emu);
    assert!(
        writes
            .iter()
            .filter(|w| w.if_match.as_deref() == Some(stale.as_str()))
            .all(|w| !w.accepted),
        "a write with the stale ETag was accepted: {writes:?}"
    );
    let accepted: Vec<_> = writes.iter().filter(|w| w.accepted).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].if_match.as_deref(), Some(fresh.as_str()));
    assert_eq!(emu_field(&emu, &k, "SalesOrderName"), "edited");
}

#[tokio::test]
async fn stale_etag_412_is_a_conflict() {
    stale_etag_conflicts_then_fresh_etag_wins(412).await;
}

#[tokio::test]
async fn stale_etag_409_is_a_conflict() {
    stale_etag_conflicts_then_fresh_etag_wins(409).await;
}

#[tokio::test]
async fn concurrent_writer_change_survives() {
    let (emu, client, _) = setup(3).await;
    let k = key(2);
    let first = client.get_order(&k, &[STATUS]).await.unwrap();
    let theirs = "PO-THEIRS-1";
    emu.external_write(
        "usmf",
        &k.sales_order_number,
        changes(&[(REQUISITION, theirs)]),
    )
    .unwrap();
    let ours = changes(&[(STATUS, "Delivered")]);
    let err = client
        .patch_order(&k, &first.etag, &ours)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    let second = client.get_order(&k, &[STATUS]).await.unwrap();
    client.patch_order(&k, &second.etag, &ours).await.unwrap();
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
    assert_eq!(
        emu_field(&emu, &k, REQUISITION),
        theirs,
        "their edit was lost"
    );
    assert!(
        client_writes(&emu)
            .iter()
            .all(|w| !w.fields.contains_key(REQUISITION))
    );
}

#[tokio::test]
async fn missing_if_match_is_428_and_the_client_always_sends_one() {
    let (emu, client, _) = setup(3).await;
    emu.set_faults(Faults {
        require_if_match: true,
        ..Default::default()
    });
    let k = key(1);

    // The client always sends If-Match, so a service that demands one works.
    let etag = client.get_order(&k, &[]).await.unwrap().etag;
    client
        .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(
        client_writes(&emu)[0].if_match.as_deref(),
        Some(etag.as_str())
    );

    // The client cannot send an unconditional PATCH (by design), so the 428
    // answer is obtained raw and classified with the client's own mapping.
    let http = reqwest::Client::new();
    let token: Value = http
        .post(emu.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", emu.scope().as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/data/{}?cross-company=true",
        emu.url(),
        k.path_segment("SalesOrderHeadersV2")
    );
    let response = http
        .patch(url)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&changes(&[(STATUS, "Canceled")]))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let ctx = ResponseContext {
        method: "PATCH",
        key: Some(&k),
        if_match: None,
    };
    let err = D365Error::from_odata_response(&ctx, status, &headers, &body);
    assert!(
        matches!(err, D365Error::PreconditionRequired { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("If-Match"), "{err}");
    assert_eq!(emu_field(&emu, &k, STATUS), "Delivered");
}
