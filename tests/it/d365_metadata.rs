//! `D365Client::entity_capabilities` against the emulator's `$metadata`:
//! AllowEdit, `Edm.Date`, an F&O-sized document, a wrong entity set, and
//! an error answer (issue 11 item 1).

use crate::common::*;
use d365_emulator::Faults;
use sales_order_operator::d365::{CapabilityError, D365Client, D365Error, MetadataError};

const WANTED: [&str; 3] = ["SalesOrderStatus", "ConfirmedReceiptDate", "NoSuchField"];

#[tokio::test]
async fn capabilities_follow_the_emulator_switches() {
    let (emu, client, recorder) = setup(1).await;
    let caps = client.entity_capabilities(&WANTED).await.unwrap();
    assert_eq!(caps.entity_set, "SalesOrderHeadersV2");
    assert_eq!(caps.key, ["dataAreaId", "SalesOrderNumber"]);
    assert!(caps.updatable);
    assert!(caps.fields["SalesOrderStatus"].editable);
    assert_eq!(
        caps.fields["ConfirmedReceiptDate"].edm_type,
        "Edm.DateTimeOffset"
    );
    assert!(!caps.fields.contains_key("NoSuchField"));
    let events = recorder.events();
    assert_eq!(events.last().unwrap().status, Some(200), "{events:?}");

    emu.set_faults(Faults {
        read_only_fields: vec!["SalesOrderStatus".into()],
        date_only_fields: vec!["ConfirmedReceiptDate".into()],
        metadata_padding_mb: 3,
        ..Faults::default()
    });
    let caps = client.entity_capabilities(&WANTED).await.unwrap();
    let status = &caps.fields["SalesOrderStatus"];
    assert!(!status.editable);
    assert_eq!(status.read_only_because.as_deref(), Some("AllowEdit=false"));
    assert!(caps.fields["ConfirmedReceiptDate"].is_date_only());
}

#[tokio::test]
async fn a_wrong_entity_set_and_an_error_answer_are_told_apart() {
    let emu = emulator(1).await;
    let mut settings = settings(&emu);
    settings.entity_set = "SalesOrderHeadersV3".into();
    let client = D365Client::new(settings, std::sync::Arc::new(Recorder::default())).unwrap();
    let err = client.entity_capabilities(&WANTED).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CapabilityError::Metadata(MetadataError::EntitySetNotFound { entity_set })
                if entity_set == "SalesOrderHeadersV3"
        ),
        "{err:?}"
    );
    emu.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    let err = client.entity_capabilities(&WANTED).await.unwrap_err();
    assert!(
        matches!(
            &err,
            CapabilityError::D365(D365Error::Unavailable {
                status: Some(503),
                ..
            })
        ),
        "{err:?}"
    );
}
