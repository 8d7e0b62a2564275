//! The orders-by-connection index as the order watch drives it: add,
//! move to another connection, delete, and a re-list that misses deletes.

use super::*;
use crate::fixtures::Placed;

fn order(ns: &str, n: usize, connection: &str) -> SalesOrderStatus {
    SalesOrderStatus::test(n).in_namespace(ns).via(connection)
}

fn names(index: &ByConnection, ns: &str, connection: &str) -> Vec<String> {
    index
        .orders_of(ns, connection)
        .into_iter()
        .map(|o| format!("{}/{}", o.namespace.unwrap_or_default(), o.name))
        .collect()
}

#[test]
fn applied_orders_are_found_by_their_connection_and_namespace_only() {
    let index = ByConnection::default();
    index.apply(&Event::Apply(order("a", 1, "d365")));
    index.apply(&Event::Apply(order("a", 2, "d365")));
    index.apply(&Event::Apply(order("a", 3, "other")));
    index.apply(&Event::Apply(order("b", 4, "d365")));
    assert_eq!(
        names(&index, "a", "d365"),
        ["a/so-2025-0001", "a/so-2025-0002"]
    );
    assert_eq!(names(&index, "a", "other"), ["a/so-2025-0003"]);
    assert_eq!(names(&index, "b", "d365"), ["b/so-2025-0004"]);
    assert!(names(&index, "b", "other").is_empty());
    assert!(index.is_used("a", "other") && !index.is_used("b", "other"));
}

#[test]
fn an_order_moved_to_another_connection_leaves_the_old_one() {
    let index = ByConnection::default();
    index.apply(&Event::Apply(order("a", 1, "d365")));
    index.apply(&Event::Apply(order("a", 1, "d365")));
    assert_eq!(names(&index, "a", "d365"), ["a/so-2025-0001"]);
    index.apply(&Event::Apply(order("a", 1, "other")));
    assert!(names(&index, "a", "d365").is_empty());
    assert!(!index.is_used("a", "d365"));
    assert_eq!(names(&index, "a", "other"), ["a/so-2025-0001"]);
}

#[test]
fn a_deleted_order_is_dropped_and_an_unknown_delete_is_harmless() {
    let index = ByConnection::default();
    index.apply(&Event::Apply(order("a", 1, "d365")));
    index.apply(&Event::Apply(order("a", 2, "d365")));
    index.apply(&Event::Delete(order("a", 1, "d365")));
    index.apply(&Event::Delete(order("a", 9, "d365")));
    assert_eq!(names(&index, "a", "d365"), ["a/so-2025-0002"]);
    index.apply(&Event::Delete(order("a", 2, "d365")));
    assert!(!index.is_used("a", "d365"));
}

#[test]
fn a_relist_replaces_the_index_at_init_done_dropping_missed_deletes() {
    let index = ByConnection::default();
    index.apply(&Event::Apply(order("a", 1, "d365")));
    index.apply(&Event::Apply(order("a", 2, "d365")));
    index.apply(&Event::Init);
    index.apply(&Event::InitApply(order("a", 2, "other")));
    index.apply(&Event::InitApply(order("a", 3, "d365")));
    // Until the re-list is done, lookups answer from what was known.
    assert_eq!(
        names(&index, "a", "d365"),
        ["a/so-2025-0001", "a/so-2025-0002"]
    );
    index.apply(&Event::InitDone);
    assert_eq!(names(&index, "a", "d365"), ["a/so-2025-0003"]);
    assert_eq!(names(&index, "a", "other"), ["a/so-2025-0002"]);
    index.apply(&Event::Apply(order("a", 4, "d365")));
    assert_eq!(
        names(&index, "a", "d365"),
        ["a/so-2025-0003", "a/so-2025-0004"]
    );
}
