//! Issue 4 item 5: $batch with atomic changesets.

use crate::common::*;
use d365_emulator::WriteSource;

pub fn patch_part(id: u32, area: &str, number: &str, etag: &str, body: &str) -> String {
    format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {id}\r\n\r\nPATCH {} HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: {etag}\r\n\r\n{body}\r\n",
        key_path(area, number)
    )
}

pub fn changeset(cs: &str, parts: &[String]) -> String {
    let mut s = format!("Content-Type: multipart/mixed; boundary={cs}\r\n\r\n");
    for p in parts {
        s.push_str(&format!("--{cs}\r\n{p}"));
    }
    s.push_str(&format!("--{cs}--\r\n"));
    s
}

async fn send(env: &Env, units: &[String]) -> (u16, String) {
    let (status, _, text) = send_with(env, units, None).await;
    (status, text)
}

/// Posts a `$batch` of `units`, with `Prefer: <prefer>` if given.
pub async fn send_with(
    env: &Env,
    units: &[String],
    prefer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut body = String::new();
    for u in units {
        body.push_str(&format!("--batch_1\r\n{u}"));
    }
    body.push_str("--batch_1--\r\n");
    let mut req = env
        .http
        .post(env.data("$batch"))
        .bearer_auth(&env.token)
        .header("Content-Type", "multipart/mixed; boundary=batch_1");
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    let r = req.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/mixed; boundary=")
    );
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn changeset_commits_all() {
    let env = start().await;
    let e1 = env.etag("usmf", "SO-2025-0001").await;
    let e2 = env.etag("usmf", "SO-2025-0002").await;
    let cs = changeset(
        "cs_1",
        &[
            patch_part(
                1,
                "usmf",
                "SO-2025-0001",
                &e1,
                r#"{"SalesOrderStatus":"Delivered"}"#,
            ),
            patch_part(
                2,
                "USMF",
                "SO-2025-0002",
                &e2,
                r#"{"SalesOrderStatus":"Delivered"}"#,
            ),
        ],
    );
    let get = format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nGET {} HTTP/1.1\r\nAccept: application/json\r\n\r\n",
        key_path("usmf", "SO-2025-0003")
    );
    let (status, text) = send(&env, &[cs, get]).await;
    assert_eq!(status, 200);
    assert_eq!(text.matches("HTTP/1.1 204").count(), 2, "{text}");
    assert!(text.contains("Content-ID: 1") && text.contains("Content-ID: 2"));
    assert!(text.contains("HTTP/1.1 200") && text.contains("SO-2025-0003"));
    for n in ["SO-2025-0001", "SO-2025-0002"] {
        assert_eq!(
            env.emu.order("usmf", n).unwrap()["SalesOrderStatus"],
            "Delivered"
        );
    }
    assert!(
        env.emu
            .history()
            .iter()
            .filter(|w| w.source == WriteSource::Client)
            .all(|w| w.via_batch && w.accepted)
    );
}

#[tokio::test]
async fn failed_changeset_rolls_back_with_one_error_part() {
    let env = start().await;
    let e1 = env.etag("usmf", "SO-2025-0001").await;
    let e2 = env.etag("usmf", "SO-2025-0002").await;
    let before1 = env.emu.order("usmf", "SO-2025-0001").unwrap();
    // Second operation carries a stale ETag.
    env.emu.external_write(
        "usmf",
        "SO-2025-0002",
        serde_json::json!({"CustomerRequisitionNumber": "X"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let cs = changeset(
        "cs_2",
        &[
            patch_part(
                1,
                "usmf",
                "SO-2025-0001",
                &e1,
                r#"{"SalesOrderStatus":"Delivered"}"#,
            ),
            patch_part(
                2,
                "usmf",
                "SO-2025-0002",
                &e2,
                r#"{"SalesOrderStatus":"Delivered"}"#,
            ),
        ],
    );
    let ok_cs = changeset(
        "cs_3",
        &[patch_part(
            3,
            "usmf",
            "SO-2025-0003",
            "*",
            r#"{"SalesOrderStatus":"Delivered"}"#,
        )],
    );
    // Asked to go on past the failure, so the later changeset runs too.
    let (status, headers, text) =
        send_with(&env, &[cs, ok_cs], Some("odata.continue-on-error")).await;
    assert_eq!(status, 200, "the batch itself succeeds");
    assert_eq!(headers["preference-applied"], "odata.continue-on-error");
    assert_eq!(text.matches("HTTP/1.1 412").count(), 1, "{text}");
    assert!(text.contains("Content-ID: 2"));
    assert!(text.contains("An error has occurred."));
    assert!(
        !text.contains("Content-ID: 1\r\n\r\nHTTP/1.1 204"),
        "first op not answered as success"
    );
    // Atomic: the first operation was rolled back, ETag unchanged.
    let after1 = env.emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(after1, before1);
    // The other changeset committed.
    assert_eq!(
        env.emu.order("usmf", "SO-2025-0003").unwrap()["SalesOrderStatus"],
        "Delivered"
    );
    let h = env.emu.history();
    assert!(
        h.iter()
            .any(|w| w.sales_order_number == "SO-2025-0001" && !w.accepted && w.status == 424)
    );
    assert!(
        h.iter()
            .any(|w| w.sales_order_number == "SO-2025-0002" && !w.accepted && w.status == 412)
    );
}

#[tokio::test]
async fn malformed_batch_is_400() {
    let env = start().await;
    let r = env
        .http
        .post(env.data("$batch"))
        .bearer_auth(&env.token)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// `Prefer: return=representation` on an operation: answered 200 with the
/// entity and `Preference-Applied` where honoured [spec], 204 where not
/// (F&O honouring it is [unverified]).
#[tokio::test]
async fn an_operation_preferring_the_entity_gets_it_where_honoured() {
    let env = start().await;
    let part = |n: &str, etag: &str| {
        patch_part(1, "usmf", n, etag, r#"{"SalesOrderStatus":"Delivered"}"#).replacen(
            "If-Match:",
            "Prefer: return=representation\r\nIf-Match:",
            1,
        )
    };
    let e1 = env.etag("usmf", "SO-2025-0001").await;
    let (status, text) = send(&env, &[changeset("cs_1", &[part("SO-2025-0001", &e1)])]).await;
    assert_eq!(status, 200);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("Preference-Applied: return=representation"),
        "{text}"
    );
    assert!(text.contains(r#""SalesOrderStatus":"Delivered""#), "{text}");
    assert!(
        text.contains(&env.etag("usmf", "SO-2025-0001").await.replace('"', "\\\"")),
        "the new ETag: {text}"
    );

    env.emu.set_faults(d365_emulator::Faults {
        honour_return_representation: false,
        ..Default::default()
    });
    let e2 = env.etag("usmf", "SO-2025-0002").await;
    let (_, text) = send(&env, &[changeset("cs_2", &[part("SO-2025-0002", &e2)])]).await;
    assert!(text.contains("HTTP/1.1 204"), "ignored: {text}");
    assert!(!text.contains("Preference-Applied"), "{text}");
}
