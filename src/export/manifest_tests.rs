use serde_json::json;

use super::*;
use crate::reconcile::{Desired, plan};

const NAMES: FieldNames<'static> = FieldNames {
    sales_status: "SalesOrderStatus",
    delivery_date: "ConfirmedReceiptDate",
};

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn target() -> Target {
    Target {
        connection: "usmf".into(),
        namespace: Some("sales".into()),
        policy: Policy::Observe,
    }
}

#[test]
fn rows_read_status_and_date_and_drop_the_unset_date() {
    let entity = fields(json!({
        "dataAreaId": "usmf", "SalesOrderNumber": "SO-1",
        "SalesOrderStatus": "Delivered", "ConfirmedReceiptDate": "2025-02-08T12:00:00Z"
    }));
    let got = row(&entity, NAMES).unwrap();
    assert_eq!(got.key, OrderKey::new("usmf", "SO-1"));
    assert_eq!(got.sales_status, SalesStatus::Delivered);
    assert_eq!(got.delivery_date, Some(jiff::civil::date(2025, 2, 8)));
    for unset in [json!("1900-01-01T12:00:00Z"), Value::Null] {
        let mut entity = entity.clone();
        entity.insert("ConfirmedReceiptDate".into(), unset);
        assert_eq!(row(&entity, NAMES).unwrap().delivery_date, None);
    }
}

#[test]
fn rows_the_crd_would_refuse_are_unexportable() {
    let base = json!({
        "dataAreaId": "usmf", "SalesOrderNumber": "SO-1",
        "SalesOrderStatus": "Backorder", "ConfirmedReceiptDate": "2025-02-08T12:00:00Z"
    });
    let table: [(&str, Value, &str); 7] = [
        ("SalesOrderStatus", json!("None"), "cannot be declared"),
        ("SalesOrderStatus", json!(3), "not a status string"),
        ("ConfirmedReceiptDate", json!("soon"), "not a date"),
        ("dataAreaId", json!("usmf1"), "dataAreaId"),
        ("dataAreaId", json!(null), "without dataAreaId"),
        ("SalesOrderNumber", json!("X".repeat(21)), "1-20 characters"),
        ("SalesOrderNumber", json!("SO\u{7}1"), "control characters"),
    ];
    for (field, value, want) in table {
        let mut entity = fields(base.clone());
        entity.insert(field.into(), value);
        let err = row(&entity, NAMES).unwrap_err().to_string();
        assert!(err.contains(want), "{field}: {err}");
    }
}

#[test]
fn a_manifest_declares_exactly_what_d365_holds() {
    let r = Row {
        key: OrderKey::new("usmf", "SO-1"),
        sales_status: SalesStatus::Invoiced,
        delivery_date: Some(jiff::civil::date(2025, 2, 8)),
    };
    let object = manifest("so-1", &r, &target());
    // The operator's own plan finds nothing to do for it.
    let entity = fields(json!({
        "dataAreaId": "usmf", "SalesOrderNumber": "SO-1",
        "SalesOrderStatus": "Invoiced", "ConfirmedReceiptDate": "2025-02-08T12:00:00Z"
    }));
    let observed = Observed::from_entity(&entity, NAMES, ("usmf", "SO-1")).unwrap();
    let spec = &object.spec;
    let desired = Desired::new(
        spec.sales_status,
        spec.delivery_date.as_deref(),
        spec.policy,
    )
    .unwrap();
    assert_eq!(
        plan(&desired, &observed, NAMES, &[]),
        crate::reconcile::Action::InSync
    );

    let yaml = render(&[object.clone(), manifest("so-2", &r, &target())]).unwrap();
    assert_eq!(yaml.matches("---\n").count(), 2, "{yaml}");
    assert!(
        !yaml.contains("status:\n") && !yaml.contains("null"),
        "{yaml}"
    );
    let first = yaml.split("---\n").nth(1).unwrap();
    let back: SalesOrderStatus = serde_yaml::from_str(first).unwrap();
    assert_eq!(back.spec, object.spec);
    assert_eq!(back.metadata.name.as_deref(), Some("so-1"));
    assert_eq!(back.metadata.namespace.as_deref(), Some("sales"));
    for line in [
        "apiVersion: d365.salesops.io/v1alpha1",
        "kind: SalesOrderStatus",
        "policy: Observe",
        "deliveryDate: 2025-02-08",
        "name: usmf",
    ] {
        assert!(first.contains(line), "{line} in {first}");
    }
}

#[test]
fn no_date_no_field() {
    let r = Row {
        key: OrderKey::new("usmf", "SO-1"),
        sales_status: SalesStatus::Backorder,
        delivery_date: None,
    };
    let yaml = render(&[manifest("so-1", &r, &target())]).unwrap();
    assert!(!yaml.contains("deliveryDate"), "{yaml}");
}
