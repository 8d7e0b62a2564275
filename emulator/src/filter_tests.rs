use super::*;
use serde_json::json;

#[test]
fn a_bulk_read_filter_names_its_keys_and_other_filters_do_not() {
    let keys = |f: &str| parse(f).unwrap().key_candidates();
    assert_eq!(
        keys("dataAreaId eq 'usmf' and (SalesOrderNumber eq 'A' or SalesOrderNumber eq 'b')"),
        Some(vec![
            ("usmf".into(), "A".into()),
            ("usmf".into(), "b".into())
        ])
    );
    assert_eq!(
        keys("SalesOrderNumber eq 'A' and dataAreaId eq 'usmf'"),
        Some(vec![("usmf".into(), "A".into())])
    );
    // Not pinned to finite sets: answered by a scan.
    assert_eq!(keys("SalesOrderNumber eq 'A'"), None, "any company");
    assert_eq!(
        keys("dataAreaId eq 'usmf' and (SalesOrderNumber eq 'A' or SalesOrderNumber ne 'B')"),
        None
    );
    assert_eq!(
        keys("dataAreaId eq 'usmf' or SalesOrderNumber eq 'A'"),
        None
    );
    assert_eq!(
        keys("not (dataAreaId eq 'usmf' and SalesOrderNumber eq 'A')"),
        None
    );
}

fn order(status: &str, n: &str) -> Order {
    Order::from_json(&json!({"dataAreaId":"usmf","SalesOrderNumber":n,"SalesOrderStatus":status}))
        .unwrap()
}

#[test]
fn filters() {
    let e = parse("dataAreaId eq 'USMF' and (SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Backorder' or SalesOrderNumber eq 'SO-2')").unwrap();
    assert!(e.eval(&order("Backorder", "SO-1"), false));
    assert!(e.eval(&order("Invoiced", "SO-2"), false));
    assert!(!e.eval(&order("Invoiced", "SO-1"), false));
    assert!(matches!(
        parse("SalesOrderStatus eq 'Backorder'"),
        Err(FilterError::Incompatible(..))
    ));
    assert!(matches!(
        parse("SalesOrderNumber in ('a')"),
        Err(FilterError::Unsupported(_))
    ));
    assert!(matches!(
        parse("Foo eq 'a'"),
        Err(FilterError::UnknownProperty(_))
    ));
    assert!(parse("SalesOrderNumber eq 'O''Brien'").is_ok());
    assert!(parse("ConfirmedReceiptDate gt 2025-01-01T00:00:00Z").is_ok());
}

#[test]
fn key_or_chains_match_numbers_in_any_case_unless_exact() {
    let e = parse(
        "dataAreaId eq 'USMF' and (SalesOrderNumber eq 'so-1' or SalesOrderNumber eq 'O''B/2')",
    )
    .unwrap();
    assert!(e.eval(&order("Backorder", "SO-1"), false));
    assert!(!e.eval(&order("Backorder", "SO-1"), true));
    assert!(e.eval(&order("Backorder", "o'b/2"), false));
    assert!(!e.eval(&order("Backorder", "SO-3"), false));
    let pairs = parse("(dataAreaId eq 'usmf' and SalesOrderNumber eq 'SO-1') or (dataAreaId eq 'demf' and SalesOrderNumber eq 'SO-3')").unwrap();
    assert!(pairs.eval(&order("Backorder", "SO-1"), true));
    assert!(!pairs.eval(&order("Backorder", "SO-3"), true));
}
