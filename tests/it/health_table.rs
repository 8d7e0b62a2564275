//! docs/operations.md's health table is the one tests/e2e/health.rs checks
//! (`sales_order_operator::health::ROWS`), word for word.

use sales_order_operator::health::{self, Phase, ROWS};

#[test]
fn the_documented_table_is_the_tested_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .expect("docs/operations.md");
    let table = health::markdown();
    assert!(
        doc.contains(&table),
        "docs/operations.md \"GitOps health\" must hold this table exactly:\n{table}"
    );
}

/// The rules of issue 13, checked on the table itself.
#[test]
fn the_table_keeps_the_rules() {
    for r in ROWS {
        let what = format!("{} {}", r.kind, r.situation);
        if r.phase != Phase::Running {
            assert_eq!(
                r.kstatus, "InProgress",
                "not observed is not healthy: {what}"
            );
        }
        if r.conditions.contains("Stalled=True") {
            assert_eq!((r.kstatus, r.argocd), ("Failed", "Degraded"), "{what}");
        }
        if r.kstatus == "InProgress" {
            assert!(
                r.phase != Phase::Running || r.conditions.contains("Reconciling=True"),
                "InProgress only while observing or retrying: {what}"
            );
        }
        assert_eq!(r.kubectl_wait == "met", r.kstatus == "Current", "{what}");
    }
    let suspended = ROWS.iter().find(|r| r.object == "order-suspended").unwrap();
    assert_eq!(
        (suspended.kstatus, suspended.argocd),
        ("Current", "Suspended")
    );
}
