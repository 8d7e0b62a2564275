//! Issue 11 items 4 and 5: `$batch` failures as ASP.NET OData answers
//! them: a failed changeset as a nested changeset, processing stopped at
//! the first failure unless `Prefer: odata.continue-on-error` is asked
//! and honoured.

use crate::batch::{changeset, patch_part, send_with};
use crate::common::*;
use d365_emulator::Faults;

const DELIVERED: &str = r#"{"SalesOrderStatus":"Delivered"}"#;

/// Changesets for orders 1..=3, the second with a stale ETag.
async fn second_fails(env: &Env) -> Vec<String> {
    let e1 = env.etag("usmf", "SO-2025-0001").await;
    let stale = env.etag("usmf", "SO-2025-0002").await;
    let fields = serde_json::json!({"CustomerRequisitionNumber": "X"});
    env.emu
        .external_write("usmf", "SO-2025-0002", fields.as_object().unwrap().clone());
    vec![
        changeset(
            "cs_1",
            &[patch_part(1, "usmf", "SO-2025-0001", &e1, DELIVERED)],
        ),
        changeset(
            "cs_2",
            &[patch_part(2, "usmf", "SO-2025-0002", &stale, DELIVERED)],
        ),
        changeset(
            "cs_3",
            &[patch_part(3, "usmf", "SO-2025-0003", "*", DELIVERED)],
        ),
    ]
}

fn status_of(env: &Env, n: u32) -> String {
    let number = format!("SO-2025-{n:04}");
    let o = env.emu.order("usmf", &number).unwrap();
    o["SalesOrderStatus"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_failed_changeset_stops_the_batch_and_is_answered_nested() {
    let env = start().await;
    let before3 = status_of(&env, 3);
    let units = second_fails(&env).await;
    let (status, headers, text) = send_with(&env, &units, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(headers.get("preference-applied").is_none());
    // Both answered changesets are nested multiparts, the failed one too.
    let nested = "Content-Type: multipart/mixed; boundary=changesetresponse_";
    assert_eq!(text.matches(nested).count(), 2, "{text}");
    let failed_at = text.find("HTTP/1.1 412").expect("the 412 part");
    let opened = text[..failed_at].rfind(nested).unwrap();
    assert!(text[opened..failed_at].contains("Content-ID: 2"), "{text}");
    assert!(text.contains("Content-ID: 1") && text.contains("HTTP/1.1 204"));
    assert!(
        !text.contains("Content-ID: 3"),
        "no answer after the failure: {text}"
    );
    assert_eq!(status_of(&env, 1), "Delivered");
    assert_eq!(status_of(&env, 3), before3, "never run");
    let history = env.emu.history();
    assert!(
        history
            .iter()
            .all(|w| w.sales_order_number != "SO-2025-0003")
    );
}

#[tokio::test]
async fn continue_on_error_goes_on_when_honoured() {
    let env = start().await;
    let units = second_fails(&env).await;
    let (_, headers, text) = send_with(&env, &units, Some("odata.continue-on-error")).await;
    assert_eq!(headers["preference-applied"], "odata.continue-on-error");
    assert!(text.contains("Content-ID: 3"), "{text}");
    assert_eq!(status_of(&env, 3), "Delivered");
}

#[tokio::test]
async fn continue_on_error_is_ignored_when_switched_off() {
    let env = start_faults(Faults {
        honour_continue_on_error: false,
        ..Faults::default()
    })
    .await;
    let before3 = status_of(&env, 3);
    let units = second_fails(&env).await;
    let (_, headers, text) = send_with(&env, &units, Some("odata.continue-on-error")).await;
    assert!(headers.get("preference-applied").is_none());
    assert!(!text.contains("Content-ID: 3"), "{text}");
    assert_eq!(status_of(&env, 3), before3);
}

#[tokio::test]
async fn a_failed_request_outside_changesets_stops_the_batch_too() {
    let env = start().await;
    let before1 = status_of(&env, 1);
    let get = format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 9\r\n\r\nGET {} HTTP/1.1\r\n\r\n",
        key_path("usmf", "SO-NOPE")
    );
    let cs = changeset(
        "cs_1",
        &[patch_part(1, "usmf", "SO-2025-0001", "*", DELIVERED)],
    );
    let (_, _, text) = send_with(&env, &[get, cs], None).await;
    assert!(text.contains("HTTP/1.1 404"), "{text}");
    assert!(!text.contains("Content-ID: 1"), "{text}");
    assert_eq!(status_of(&env, 1), before1);
}
