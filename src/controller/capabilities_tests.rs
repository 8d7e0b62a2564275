use std::collections::BTreeMap;

use super::*;

fn caps(status_editable: bool, date_type: &str, updatable: bool) -> EntityCapabilities {
    let field = |edm_type: &str, editable: bool| FieldCapability {
        edm_type: edm_type.into(),
        editable,
        read_only_because: (!editable).then(|| "AllowEdit=false".into()),
    };
    let fields = BTreeMap::from([
        (
            "SalesOrderStatus".to_owned(),
            field(
                "Microsoft.Dynamics.DataEntities.SalesStatus",
                status_editable,
            ),
        ),
        ("ConfirmedReceiptDate".to_owned(), field(date_type, true)),
    ]);
    EntityCapabilities {
        entity_set: "SalesOrderHeadersV2".into(),
        entity_type: "Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2".into(),
        key: vec!["dataAreaId".into(), "SalesOrderNumber".into()],
        updatable,
        fields,
    }
}

#[test]
fn verdict_names_the_field_and_the_fix() {
    let mapping = FieldMapping::default();
    let (ready, reason, message) = verdict(&caps(false, "Edm.DateTimeOffset", true), &mapping);
    assert!(!ready);
    assert_eq!(reason, Reason::FieldNotEditable);
    assert_eq!(
        message,
        "SalesOrderStatus is not editable on SalesOrderHeadersV2 in this environment \
         (AllowEdit=false); map salesStatus to an editable field, e.g. a custom extension field"
    );
    let (ready, reason, message) = verdict(&caps(true, "Edm.Date", true), &mapping);
    assert!(ready && reason == Reason::Authenticated, "{message}");
    assert!(
        message.contains("deliveryDate -> ConfirmedReceiptDate (Edm.Date)"),
        "{message}"
    );
    let (ready, reason, message) = verdict(&caps(true, "Edm.Date", false), &mapping);
    assert!(!ready && reason == Reason::FieldNotEditable);
    assert!(message.contains("not updatable"), "{message}");
    let renamed = FieldMapping {
        sales_status: "Nope".into(),
        ..FieldMapping::default()
    };
    let (ready, reason, message) = verdict(&caps(true, "Edm.Date", true), &renamed);
    assert!(!ready && reason == Reason::FieldNotFound);
    assert!(
        message.starts_with("Nope is not a property of SalesOrderHeaderV2")
            && message.contains("spec.fields.salesStatus"),
        "{message}"
    );
}

#[test]
fn summary_lists_every_mapping() {
    let renamed = FieldMapping {
        delivery_date: "Nope".into(),
        ..FieldMapping::default()
    };
    let s = summary(&caps(false, "Edm.Date", true), &renamed);
    assert_eq!(s.key, ["dataAreaId", "SalesOrderNumber"]);
    assert_eq!(
        (s.fields[0].mapping.as_str(), s.fields[0].editable),
        ("salesStatus", Some(false))
    );
    assert_eq!(
        (s.fields[1].found, s.fields[1].edm_type.as_deref()),
        (false, None)
    );
}

#[test]
fn known_fields_feed_the_planner() {
    let known = KnownFields::default();
    let unknown = known.for_fields("SalesOrderStatus", "ConfirmedReceiptDate");
    assert_eq!(unknown, Capabilities::default());
    known.set(caps(false, "Edm.Date", true));
    let got = known.for_fields("SalesOrderStatus", "ConfirmedReceiptDate");
    assert!(!got.sales_status.editable && !got.sales_status.date_only);
    assert!(got.delivery_date.editable && got.delivery_date.date_only);
    let mapping = FieldMapping::default();
    let message = order_message(&known, &mapping, &["SalesOrderStatus".into()]);
    assert!(
        message.starts_with("SalesOrderStatus is not editable on SalesOrderHeadersV2")
            && message.ends_with("; no request sent"),
        "{message}"
    );
    known.set(caps(true, "Edm.Date", false));
    let got = known.for_fields("SalesOrderStatus", "ConfirmedReceiptDate");
    assert!(!got.sales_status.editable && !got.delivery_date.editable);
}

#[test]
fn a_failed_read_is_retried_sooner_than_a_good_one_is_refreshed() {
    let now = Instant::now();
    assert_eq!(next_check(now, true) - now, METADATA_REFRESH);
    assert_eq!(next_check(now, false) - now, METADATA_RETRY);
}

#[tokio::test(start_paused = true)]
async fn a_write_waits_for_the_check_but_not_forever() {
    assert!(KnownFields::default().is_settled(), "no check will come");
    let known = KnownFields::pending();
    assert!(!known.is_settled());
    let started = tokio::time::Instant::now();
    known.settled_within(CAPABILITY_WAIT).await;
    assert_eq!(
        started.elapsed(),
        CAPABILITY_WAIT,
        "unsettled: the whole wait"
    );
    let shared = known.clone();
    let waiter = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        shared.settled_within(CAPABILITY_WAIT).await;
        started.elapsed()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    known.set(caps(true, "Edm.Date", true));
    let waited = waiter.await.unwrap();
    assert_eq!(
        waited,
        Duration::from_secs(1),
        "woken when the check settles"
    );
    assert!(known.is_settled());
}
