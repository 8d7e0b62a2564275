//! `$metadata` with AllowEdit, the `readOnlyFields`, `dateOnlyFields` and
//! `metadataPaddingMb` switches.

use d365_emulator::Faults;
use serde_json::json;

use crate::common::{inner_message, key_path, start_faults};

#[tokio::test]
async fn metadata_annotates_allow_edit_and_types_date_only_fields() {
    let env = start_faults(Faults {
        read_only_fields: vec!["SalesOrderStatus".into()],
        date_only_fields: vec!["ConfirmedReceiptDate".into()],
        ..Faults::default()
    })
    .await;
    let r = env.get("$metadata").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/xml");
    let xml = r.text().await.unwrap();
    let allow = |v: bool| {
        format!("<Annotation Term=\"Microsoft.Dynamics.OData.Core.V1.AllowEdit\" Bool=\"{v}\" />")
    };
    assert!(
        xml.contains(&format!(
            "<Property Name=\"SalesOrderStatus\" Type=\"Microsoft.Dynamics.DataEntities.SalesStatus\">{}",
            allow(false)
        )),
        "{xml}"
    );
    assert!(xml.contains(&format!(
        "<Property Name=\"ConfirmedReceiptDate\" Type=\"Edm.Date\">{}",
        allow(true)
    )));
    assert!(xml.contains(&format!(
        "<Property Name=\"RequestedReceiptDate\" Type=\"Edm.DateTimeOffset\">{}",
        allow(true)
    )));
    assert!(xml.contains(&format!(
        "<Property Name=\"dataAreaId\" Type=\"Edm.String\">{}",
        allow(false)
    )));
    assert!(xml.ends_with("</edmx:Edmx>") && !xml.contains("PaddingEntity"));
}

#[tokio::test]
async fn metadata_padding_makes_it_large() {
    let env = start_faults(Faults {
        metadata_padding_mb: 2,
        ..Faults::default()
    })
    .await;
    let xml = env.get("$metadata").await.text().await.unwrap();
    assert!(xml.len() >= 2 * 1024 * 1024, "{}", xml.len());
    let order_type = xml.find("<EntityType Name=\"SalesOrderHeaderV2\"").unwrap();
    assert!(order_type > 2 * 1024 * 1024, "padding comes first");
    assert!(xml.ends_with("</edmx:Edmx>"));
}

#[tokio::test]
async fn patch_of_a_read_only_field_is_refused_and_changes_nothing() {
    let env = start_faults(Faults {
        read_only_fields: vec!["SalesOrderStatus".into()],
        ..Faults::default()
    })
    .await;
    let path = key_path("USSI", "SO-SI-1");
    let etag = env.etag("USSI", "SO-SI-1").await;
    let url = format!("{path}?cross-company=true");
    let r = env
        .patch(&url, Some(&etag), json!({"SalesOrderStatus": "Delivered"}))
        .await;
    let (status, message) = inner_message(r).await;
    assert_eq!(status, 400);
    assert!(message.contains("Field 'SalesOrderStatus'"), "{message}");
    assert!(message.contains("cannot be edited"), "{message}");
    assert_eq!(env.etag("USSI", "SO-SI-1").await, etag);
    // Other fields still go through.
    let r = env
        .patch(&url, Some(&etag), json!({"CustomersOrderReference": "x"}))
        .await;
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn date_only_fields_take_and_show_dates() {
    let env = start_faults(Faults {
        date_only_fields: vec!["ConfirmedReceiptDate".into()],
        ..Faults::default()
    })
    .await;
    let url = format!("{}?cross-company=true", key_path("USSI", "SO-SI-1"));
    let before = env.get_json(&url).await;
    assert_eq!(before["ConfirmedReceiptDate"], "1900-01-01");
    assert_eq!(before["RequestedReceiptDate"], "1900-01-01T12:00:00Z");
    let etag = before["@odata.etag"].as_str().unwrap().to_owned();
    let r = env
        .patch(
            &url,
            Some(&etag),
            json!({"ConfirmedReceiptDate": "2025-02-08T12:00:00Z"}),
        )
        .await;
    let (status, message) = inner_message(r).await;
    assert_eq!(status, 400);
    assert!(
        message.contains("Value 2025-02-08T12:00:00Z is not a valid Date"),
        "{message}"
    );
    let r = env
        .patch(
            &url,
            Some(&etag),
            json!({"ConfirmedReceiptDate": "2025-02-08"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let after = env.get_json(&url).await;
    assert_eq!(after["ConfirmedReceiptDate"], "2025-02-08");
    let page = env
        .get_json("SalesOrderHeadersV2?cross-company=true&$filter=dataAreaId eq 'ussi'")
        .await;
    assert_eq!(page["value"][0]["ConfirmedReceiptDate"], "2025-02-08");
    // A DateTimeOffset field still refuses a bare date.
    let etag = after["@odata.etag"].as_str().unwrap().to_owned();
    let r = env
        .patch(
            &url,
            Some(&etag),
            json!({"RequestedReceiptDate": "2025-02-08"}),
        )
        .await;
    assert_eq!(r.status(), 400);
}
