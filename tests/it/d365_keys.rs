//! Issue 11 items 2 and 3 against the emulator over loopback: key values
//! F&O routes (`/`, `\`, `+` encoded twice), order numbers in another
//! case, D365's validation errors as 400 and 500, and a Web API 404 told
//! apart from a missing order.

use crate::common::*;
use d365_emulator::Faults;
use sales_order_operator::d365::{D365Client, D365Error, ETag, OrderKey};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn keys_with_slash_plus_and_backslash_are_read_and_written() {
    let (emu, client, _) = setup(1).await;
    for number in ["SO/2025/0145", "SO+1\\2", "100% O'Brien"] {
        emu.put_order(json!({"dataAreaId": "usmf", "SalesOrderNumber": number}));
        let k = OrderKey::new("USMF", number);
        let entity = client.get_order(&k, &[]).await.unwrap();
        assert_eq!(entity.fields["SalesOrderNumber"], number);
        client
            .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
            .await
            .unwrap();
        assert_eq!(emu_field(&emu, &k, STATUS), "Delivered", "{number}");
    }
}

#[tokio::test]
async fn an_order_number_in_other_case_finds_the_order() {
    let (emu, client, _) = setup(1).await;
    let lower = OrderKey::new("usmf", "so-2025-0001");
    let entity = client.get_order(&lower, &[]).await.unwrap();
    assert_eq!(entity.fields["SalesOrderNumber"], "SO-2025-0001");
    client
        .patch_order(&lower, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap();
    assert_eq!(emu_field(&emu, &key(1), STATUS), "Delivered");
}

#[tokio::test]
async fn validation_errors_are_rejected_with_d365_text_as_400_and_500() {
    for status in [400, 500] {
        let emu = emulator_with(
            1,
            Faults {
                validation_status: status,
                ..Faults::default()
            },
        )
        .await;
        let client = D365Client::new(settings(&emu), Arc::new(Recorder::default())).unwrap();
        let k = key(1);
        emu.external_write(
            &k.data_area_id,
            &k.sales_order_number,
            changes(&[(STATUS, "Invoiced")]),
        )
        .unwrap();
        let etag = ETag::parse(&emu_etag(&emu, &k)).unwrap();
        let err = client
            .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
            .await
            .unwrap_err();
        let D365Error::Rejected {
            status: got,
            message,
        } = &err
        else {
            panic!("{status}: expected Rejected, got {err:?}")
        };
        assert_eq!(*got, status);
        assert!(message.contains("Write failed for table row"), "{message}");
        assert!(message.contains("Infolog"), "{message}");
        assert!(!err.is_transient());
        assert_eq!(emu_field(&emu, &k, STATUS), "Invoiced");
    }
}

#[tokio::test]
async fn a_web_api_404_is_no_such_route_not_a_missing_order() {
    let emu = emulator(1).await;
    let mut s = settings(&emu);
    s.entity_set = "SalesOrderHeaders".into();
    let wrong_set = D365Client::new(s, Arc::new(Recorder::default())).unwrap();
    let err = wrong_set.get_order(&key(1), &[]).await.unwrap_err();
    assert!(matches!(err, D365Error::NotFound { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("no such route (check the connection's url and entitySet)"),
        "{text}"
    );
    assert!(text.contains("No HTTP resource was found"), "{text}");

    let client = D365Client::new(settings(&emu), Arc::new(Recorder::default())).unwrap();
    let err = client.get_order(&key(9999), &[]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("order not found:"), "{text}");
    assert!(text.contains("SO-2025-9999"), "{text}");
    assert!(!text.contains("route"), "{text}");
}
