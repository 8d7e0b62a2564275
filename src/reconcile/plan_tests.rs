use super::*;
use serde_json::json;

const NAMES: FieldNames<'static> = FieldNames {
    sales_status: "SalesOrderStatus",
    delivery_date: "ConfirmedReceiptDate",
};
const FINAL: [SalesStatus; 2] = [SalesStatus::Invoiced, SalesStatus::Canceled];

fn observed(status: &str, date: Value) -> Observed {
    let fields =
        json!({"SalesOrderStatus": status, "ConfirmedReceiptDate": date, "dataAreaId": "usmf"});
    Observed::from_entity(fields.as_object().unwrap(), NAMES, ("USMF", "SO-1")).unwrap()
}

fn desired(status: SalesStatus, date: Option<&str>, policy: Policy) -> Desired {
    Desired::new(status, date, policy).unwrap()
}

fn patch(pairs: &[(&str, &str)]) -> Action {
    Action::Patch {
        changes: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    }
}

#[test]
fn plan_table() {
    use Policy::*;
    use SalesStatus::*;
    let unset = json!("1900-01-01T12:00:00Z");
    let cases: Vec<(&str, Desired, Observed, Action)> = vec![
        (
            "in sync, no date wanted",
            desired(Delivered, None, Enforce),
            observed("Delivered", unset.clone()),
            Action::InSync,
        ),
        (
            "in sync, same day other time",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", json!("2025-02-08T00:00:00Z")),
            Action::InSync,
        ),
        (
            "status differs only",
            desired(Delivered, None, Enforce),
            observed("Backorder", unset.clone()),
            patch(&[("SalesOrderStatus", "Delivered")]),
        ),
        (
            "date differs only",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", json!("2025-02-01T12:00:00Z")),
            patch(&[("ConfirmedReceiptDate", "2025-02-08T12:00:00Z")]),
        ),
        (
            "unset date counts as different",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", unset.clone()),
            patch(&[("ConfirmedReceiptDate", "2025-02-08T12:00:00Z")]),
        ),
        (
            "null date counts as unset",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", Value::Null),
            patch(&[("ConfirmedReceiptDate", "2025-02-08T12:00:00Z")]),
        ),
        (
            "both differ",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Backorder", unset.clone()),
            patch(&[
                ("SalesOrderStatus", "Delivered"),
                ("ConfirmedReceiptDate", "2025-02-08T12:00:00Z"),
            ]),
        ),
        (
            "observe reports drift",
            desired(Delivered, Some("2025-02-08"), Observe),
            observed("Backorder", unset.clone()),
            Action::Drifted {
                fields: vec!["ConfirmedReceiptDate".into(), "SalesOrderStatus".into()],
            },
        ),
        (
            "observe in sync",
            desired(Backorder, None, Observe),
            observed("Backorder", unset.clone()),
            Action::InSync,
        ),
        (
            "invoiced is final",
            desired(Delivered, None, Enforce),
            observed("Invoiced", unset.clone()),
            Action::InvalidTransition {
                from: "Invoiced".into(),
                to: Delivered,
            },
        ),
        (
            "canceled is final",
            desired(Backorder, None, Enforce),
            observed("Canceled", unset.clone()),
            Action::InvalidTransition {
                from: "Canceled".into(),
                to: Backorder,
            },
        ),
        (
            "final but only the date differs",
            desired(Invoiced, Some("2025-02-08"), Enforce),
            observed("Invoiced", unset.clone()),
            patch(&[("ConfirmedReceiptDate", "2025-02-08T12:00:00Z")]),
        ),
        (
            "final and in sync",
            desired(Invoiced, None, Enforce),
            observed("Invoiced", unset.clone()),
            Action::InSync,
        ),
        (
            "None status may move",
            desired(Backorder, None, Enforce),
            observed("None", unset),
            patch(&[("SalesOrderStatus", "Backorder")]),
        ),
    ];
    for (name, d, o, want) in cases {
        assert_eq!(plan(&d, &o, NAMES, &FINAL), want, "case: {name}");
    }
}

#[test]
fn transitions_table_is_configurable() {
    let d = desired(SalesStatus::Delivered, None, Policy::Enforce);
    let o = observed("Invoiced", json!("1900-01-01T12:00:00Z"));
    assert_eq!(
        plan(&d, &o, NAMES, &[]),
        patch(&[("SalesOrderStatus", "Delivered")])
    );
}

#[test]
fn custom_field_names_are_used() {
    let names = FieldNames {
        sales_status: "SalesOrderStatus",
        delivery_date: "RequestedShippingDate",
    };
    let fields =
        json!({"SalesOrderStatus": "Delivered", "RequestedShippingDate": "1900-01-01T12:00:00Z"});
    let o = Observed::from_entity(fields.as_object().unwrap(), names, ("USMF", "SO-1")).unwrap();
    let d = desired(SalesStatus::Delivered, Some("2025-03-01"), Policy::Enforce);
    assert_eq!(
        plan(&d, &o, names, &FINAL),
        patch(&[("RequestedShippingDate", "2025-03-01T12:00:00Z")])
    );
}

#[test]
fn bad_entities_are_errors_not_panics() {
    let missing = json!({"ConfirmedReceiptDate": "1900-01-01T12:00:00Z"});
    assert_eq!(
        Observed::from_entity(missing.as_object().unwrap(), NAMES, ("USMF", "SO-1")),
        Err(PlanError::MissingField {
            field: "SalesOrderStatus".into()
        })
    );
    let bad_date = json!({"SalesOrderStatus": "Delivered", "ConfirmedReceiptDate": "soon"});
    assert!(matches!(
        Observed::from_entity(bad_date.as_object().unwrap(), NAMES, ("USMF", "SO-1")),
        Err(PlanError::BadValue { .. })
    ));
    let numeric_status = json!({"SalesOrderStatus": 3});
    assert!(matches!(
        Observed::from_entity(numeric_status.as_object().unwrap(), NAMES, ("USMF", "SO-1")),
        Err(PlanError::BadValue { .. })
    ));
    assert!(Desired::new(SalesStatus::Delivered, Some("2025-02-30"), Policy::Enforce).is_err());
}

#[test]
fn dates_round_trip_to_entity_format() {
    assert_eq!(
        date_to_entity(jiff::civil::date(2025, 2, 8)),
        "2025-02-08T12:00:00Z"
    );
    assert_eq!(parse_entity_date("1900-01-01T12:00:00Z"), Some(None));
    assert_eq!(
        parse_entity_date("2025-02-08T23:59:59+05:00"),
        Some(Some(jiff::civil::date(2025, 2, 8)))
    );
    assert_eq!(parse_entity_date("2025"), None);
}

#[test]
fn company_and_number_compare_case_insensitively() {
    let entity = |company: &str, number: &str| json!({"dataAreaId": company, "SalesOrderNumber": number, "SalesOrderStatus": "Delivered"});
    let check = |e: Value, key| Observed::from_entity(e.as_object().unwrap(), NAMES, key);
    assert!(check(entity("usmf", "SO-1"), ("USMF", "SO-1")).is_ok());
    assert!(check(entity("USMF", "SO-1"), ("usmf", "SO-1")).is_ok());
    assert!(matches!(
        check(entity("usrt", "SO-1"), ("USMF", "SO-1")),
        Err(PlanError::WrongOrder { .. })
    ));
    // F&O's collation: `so-1` is `SO-1`, and D365 answers its own spelling.
    assert!(check(entity("usmf", "SO-1"), ("USMF", "so-1")).is_ok());
    assert!(check(entity("usmf", "Ü-1"), ("USMF", "ü-1")).is_ok());
    assert!(matches!(
        check(entity("usmf", "SO-2"), ("USMF", "SO-1")),
        Err(PlanError::WrongOrder { .. })
    ));
}

#[test]
fn desired_dates_on_or_before_the_unset_marker_are_refused() {
    let cases = [
        ("1900-01-01", false),
        ("1899-12-31", false),
        ("0001-01-01", false),
        ("1900-01-02", true),
        ("2025-02-08", true),
    ];
    for (date, ok) in cases {
        let got = Desired::new(SalesStatus::Delivered, Some(date), Policy::Enforce);
        match got {
            Ok(d) => assert!(ok, "{date} accepted as {d:?}"),
            Err(e) => {
                assert!(!ok, "{date}: {e}");
                assert_eq!(e, PlanError::UnsetDesiredDate { value: date.into() });
                assert!(e.to_string().contains("no date"), "{e}");
            }
        }
    }
}

/// What `$metadata` says changes the plan: a needed field that is not
/// editable is never sent; an `Edm.Date` is written as a date.
#[test]
fn capabilities_table() {
    use Policy::*;
    use SalesStatus::*;
    let locked = FieldCaps {
        editable: false,
        date_only: false,
    };
    let date_only = FieldCaps {
        editable: true,
        date_only: true,
    };
    let caps = |sales_status, delivery_date| Capabilities {
        sales_status,
        delivery_date,
    };
    let open = FieldCaps::default();
    let unset = json!("1900-01-01T12:00:00Z");
    let cases: Vec<(&str, Desired, Observed, Capabilities, Action)> = vec![
        (
            "status change needs a read-only status",
            desired(Delivered, None, Enforce),
            observed("Backorder", unset.clone()),
            caps(locked, open),
            Action::NotEditable {
                fields: vec!["SalesOrderStatus".into()],
            },
        ),
        (
            "both change, status read-only: nothing is sent",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Backorder", unset.clone()),
            caps(locked, open),
            Action::NotEditable {
                fields: vec!["SalesOrderStatus".into()],
            },
        ),
        (
            "only the date changes: a read-only status does not matter",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", unset.clone()),
            caps(locked, open),
            patch(&[("ConfirmedReceiptDate", "2025-02-08T12:00:00Z")]),
        ),
        (
            "in sync with read-only fields",
            desired(Delivered, None, Enforce),
            observed("Delivered", unset.clone()),
            caps(locked, locked),
            Action::InSync,
        ),
        (
            "observe policy reports drift, not the field",
            desired(Delivered, None, Observe),
            observed("Backorder", unset.clone()),
            caps(locked, open),
            Action::Drifted {
                fields: vec!["SalesOrderStatus".into()],
            },
        ),
        (
            "a final status is reported before editability",
            desired(Delivered, None, Enforce),
            observed("Invoiced", unset.clone()),
            caps(locked, open),
            Action::InvalidTransition {
                from: "Invoiced".into(),
                to: Delivered,
            },
        ),
        (
            "an Edm.Date is written as a date",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", json!("2025-02-01")),
            caps(open, date_only),
            patch(&[("ConfirmedReceiptDate", "2025-02-08")]),
        ),
        (
            "an Edm.Date read back as a date is in sync",
            desired(Delivered, Some("2025-02-08"), Enforce),
            observed("Delivered", json!("2025-02-08")),
            caps(open, date_only),
            Action::InSync,
        ),
    ];
    for (name, desired, observed, caps, want) in cases {
        let got = plan_with(&desired, &observed, NAMES, caps, &FINAL);
        assert_eq!(got, want, "{name}");
    }
}
