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

/// The conditions column as rendered from live objects.
#[test]
fn conditions_render_in_the_tables_words() {
    use serde_json::json;
    let ready = |status: &str| json!({"type": "Ready", "status": status, "reason": "Updated"});
    let obj = |generation: i64, status: serde_json::Value| json!({"metadata": {"generation": generation}, "status": status});
    // Reconciling and Stalled are absent unless True.
    let conditions = |r| json!([ready(r)]);
    assert_eq!(
        health::conditions(&obj(
            2,
            json!({"observedGeneration": 2, "conditions": conditions("True")})
        )),
        "Ready=True (Updated)"
    );
    assert_eq!(
        health::conditions(&obj(
            3,
            json!({"observedGeneration": 2, "conditions": conditions("True")})
        )),
        "Ready=True (Updated); generation not observed"
    );
    assert_eq!(
        health::conditions(&obj(1, json!({"observedGeneration": 0}))),
        "none; generation not observed"
    );
    assert_eq!(
        health::conditions(&json!({"metadata": {"generation": 1}})),
        "none; generation not observed",
        "no status at all is not observed either"
    );
    assert_eq!(
        health::conditions(&obj(
            1,
            json!({"observedGeneration": 1, "conditions": [ready("False")]})
        )),
        "Ready=False (Updated)",
        "an absent abnormal-true condition is left out"
    );
    let old_shape = json!([
        ready("True"),
        {"type": "Reconciling", "status": "False", "reason": "Updated"},
        {"type": "Stalled", "status": "False", "reason": "Updated"},
    ]);
    assert_eq!(
        health::conditions(&obj(
            1,
            json!({"observedGeneration": 1, "conditions": old_shape})
        )),
        "Ready=True, Reconciling=False, Stalled=False (Updated)",
        "an object written by an earlier build shows what it holds"
    );
}
