//! docs/grafana-dashboard.json parses, and every PromQL expression in it
//! names only metrics the operator really exports (taken from its own
//! `/metrics` rendering, not from a hand-kept list), and every exported
//! metric has a panel.

use std::collections::BTreeSet;
use std::time::Duration;

use sales_order_operator::api::Reason;
use sales_order_operator::d365::{OperationEvent, RequestEvent, RequestKind, RequestObserver};
use sales_order_operator::metrics::{Metrics, RequeueCause};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../docs/grafana-dashboard.json");

/// Sample names the operator exposes (`foo_total`, `foo_bucket`, ...), with
/// every family touched once so each renders samples.
fn exported_samples() -> BTreeSet<String> {
    let m = Metrics::default();
    m.reconciled("success", Duration::from_millis(5));
    m.reconciled("error", Duration::from_millis(5));
    m.outcome("orders", "a", "usmf", Reason::Updated);
    m.status_written();
    m.set_leader("sales-order-operator", true);
    m.set_shards(1);
    m.connection_requeue(RequeueCause::Busy);
    m.observe(&RequestEvent {
        method: "PATCH",
        kind: RequestKind::Entity,
        status: Some(412),
        duration: Duration::from_millis(3),
    });
    m.observe(&RequestEvent {
        method: "GET",
        kind: RequestKind::Entity,
        status: Some(429),
        duration: Duration::from_millis(3),
    });
    m.observe_operation(&OperationEvent {
        method: "PATCH",
        status: Some(412),
    });
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// Every `expr` of every target, panels nested in rows included.
fn exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_owned();
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {title:?}: target without expr"));
                out.push((title.clone(), expr.to_owned()));
            }
            if let Some(inner) = p["panels"].as_array() {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        dashboard["panels"]
            .as_array()
            .expect("dashboard has panels"),
        &mut out,
    );
    out
}

/// Metric names in a PromQL expression: identifiers that are not functions
/// (followed by `(`), keywords, label names (inside `{}` or `by (...)`),
/// durations, numbers or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
    ];
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => cleaned.push(c),
        }
    }
    // Drop label lists of aggregations: `by (a, b)`, `without (...)`.
    let mut text = cleaned;
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        while let Some(at) = find_clause(&text, kw) {
            let close = text[at..]
                .find(')')
                .map(|i| at + i + 1)
                .unwrap_or(text.len());
            text.replace_range(at..close, " ");
        }
    }
    let mut names = BTreeSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '$' {
            while i < bytes.len()
                && (bytes[i] == '$' || bytes[i].is_alphanumeric() || bytes[i] == '_')
            {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '_' || bytes[i] == ':')
            {
                i += 1;
            }
            let word: String = bytes[start..i].iter().collect();
            let next = bytes[i..].iter().find(|c| !c.is_whitespace());
            let is_number_suffix = start > 0 && bytes[start - 1].is_ascii_digit(); // 1e-9
            if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) && !is_number_suffix {
                names.insert(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

/// Start of `kw (` as a whole word in `text`.
fn find_clause(text: &str, kw: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(kw).map(|i| from + i) {
        let before_ok = i == 0
            || !text.as_bytes()[i - 1].is_ascii_alphanumeric() && text.as_bytes()[i - 1] != b'_';
        let rest = text[i + kw.len()..].trim_start();
        if before_ok && rest.starts_with('(') {
            return Some(i);
        }
        from = i + kw.len();
    }
    None
}

#[test]
fn the_expression_parser_sees_metrics_only() {
    let got = metric_names(
        r#"sum by (reason, le) (rate(foo_total{a="b{c}", d=~"$x"}[$__rate_interval])) / clamp_min(bar_count offset 5m, 1e-9) and on (pod) baz * on (pod) group_left (version) qux"#,
    );
    assert_eq!(
        got,
        ["bar_count", "baz", "foo_total", "qux"]
            .map(String::from)
            .into()
    );
}

#[test]
fn dashboard_parses_and_every_expr_uses_exported_metrics() {
    let dashboard: Value =
        serde_json::from_str(DASHBOARD).expect("docs/grafana-dashboard.json is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let exported = exported_samples();
    assert!(
        exported.contains("sales_order_operator_d365_requests_total"),
        "{exported:?}"
    );
    let all = exprs(&dashboard);
    assert!(all.len() >= 10, "only {} expressions", all.len());
    let mut used = BTreeSet::new();
    for (title, expr) in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "panel {title:?}: no metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "panel {title:?} uses {name}, which the operator does not export ({exported:?})"
            );
            used.insert(name);
        }
    }
    // Each exported family appears somewhere (histograms via _bucket or _sum).
    let family = |s: &str| {
        ["_bucket", "_sum", "_count", "_created"]
            .iter()
            .fold(s.to_owned(), |s, suffix| {
                s.trim_end_matches(suffix).to_owned()
            })
    };
    let used_families: BTreeSet<String> = used.iter().map(|s| family(s)).collect();
    let missing: Vec<String> = exported
        .iter()
        .map(|s| family(s))
        .filter(|f| !used_families.contains(f))
        .collect();
    assert!(missing.is_empty(), "no panel for {missing:?}");
}

#[test]
fn panels_have_unique_ids_and_prometheus_targets() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("numeric id"))
        .collect();
    assert_eq!(ids.len(), panels.len(), "duplicate panel ids");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["type"], "prometheus",
            "panel {}",
            p["title"]
        );
        assert!(p["gridPos"]["w"].as_u64().unwrap() <= 24);
    }
}
