//! The alert rules, proven by the real promtool (Debian's `prometheus`
//! package, fetched once by hack/tools/promtool.sh): `promtool check rules`
//! on the one rules file, `promtool test rules` on tests/promtool/, every
//! alert covered firing and silent, the chart's PrometheusRule carrying
//! exactly that file, and the "stalled" reasons being the operator's own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sales_order_operator::api::Reason;
use serde_yaml::Value;

use crate::helm::{ROOT, chart_dir, of_kind, one, render};

fn rules_file() -> PathBuf {
    chart_dir().join("files/prometheus-rules.yaml")
}

fn unit_tests_file() -> PathBuf {
    Path::new(ROOT).join("tests/promtool/alerts_test.yaml")
}

/// promtool.
fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        crate::helm::tool(
            "promtool.sh",
            "promtool is needed for the alert tests: it needs apt-get and dpkg-deb, or set PROMTOOL=/path/to/promtool",
        )
    })
}

fn run_promtool(args: &[&Path]) -> Output {
    let mut cmd = Command::new(promtool());
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("promtool runs")
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rules() -> Vec<Value> {
    let file = yaml(&rules_file());
    let groups = file["groups"].as_sequence().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

fn alert_names() -> BTreeSet<String> {
    rules()
        .iter()
        .map(|r| r["alert"].as_str().expect("only alerting rules").to_owned())
        .collect()
}

#[test]
fn the_rules_pass_promtool_check_and_its_unit_tests() {
    let check = run_promtool(&[Path::new("check"), Path::new("rules"), &rules_file()]);
    assert_ok("promtool check rules", &check);
    let stdout = String::from_utf8_lossy(&check.stdout);
    let found = format!("SUCCESS: {} rules found", alert_names().len());
    assert!(stdout.contains(&found), "{stdout}");

    let test = run_promtool(&[Path::new("test"), Path::new("rules"), &unit_tests_file()]);
    assert_ok("promtool test rules", &test);
}

/// Each alert has a unit test where it fires and one where it stays
/// silent, and the tests name no alert the rules do not have.
#[test]
fn every_alert_is_unit_tested_firing_and_silent() {
    let tests = yaml(&unit_tests_file());
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for t in tests["tests"].as_sequence().expect("tests") {
        for case in t["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().expect("alertname").to_owned();
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected > 0 {
                firing.insert(name);
            } else {
                silent.insert(name);
            }
        }
    }
    let alerts = alert_names();
    for must in [
        "SalesOrdersStalled",
        "SalesOrderConflictStorm",
        "SalesOrderD365Throttled",
        "SalesOrderOperatorNotLeading",
        "SalesOrderOperatorDown",
    ] {
        assert!(alerts.contains(must), "{must} missing from the rules");
    }
    assert_eq!(firing, alerts, "alerts never tested firing");
    assert!(silent.is_subset(&alerts), "{silent:?}");
    let untested: Vec<_> = alerts.difference(&silent).collect();
    assert!(untested.is_empty(), "never tested silent: {untested:?}");
}

/// The alert's reason list is `Reason::is_stalled`, no more, no less: a
/// new stalled reason that the alert missed would never page anyone.
#[test]
fn the_stalled_alert_names_exactly_the_stalled_reasons() {
    let rules = rules();
    let stalled = rules
        .iter()
        .find(|r| r["alert"] == "SalesOrdersStalled")
        .expect("SalesOrdersStalled");
    let in_code: BTreeSet<&str> = Reason::ALL
        .into_iter()
        .filter(|r| r.is_stalled())
        .map(Reason::as_str)
        .collect();
    assert_eq!(reasons_matched(stalled["expr"].as_str().unwrap()), in_code);

    // The dashboard's "Stalled orders" panel counts the same reasons.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join("docs/grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Stalled orders")
        .expect("a Stalled orders panel");
    let expr = panel["targets"][0]["expr"].as_str().unwrap();
    assert_eq!(reasons_matched(expr), in_code, "{expr}");
}

/// The alternatives of the `reason=~"..."` matcher in `expr`.
fn reasons_matched(expr: &str) -> BTreeSet<&str> {
    let start = expr.find("reason=~\"").expect("a reason matcher") + "reason=~\"".len();
    let len = expr[start..].find('"').unwrap();
    expr[start..start + len].split('|').collect()
}

#[test]
fn the_chart_prometheus_rule_is_the_rules_file_and_off_by_default() {
    let off = render("so", "ops", &[]);
    assert!(of_kind(&off, "PrometheusRule").is_empty());

    let docs = render(
        "so",
        "ops",
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.labels.release=kube-prometheus-stack",
        ],
    );
    let rule = one(&docs, "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(
        rule["metadata"]["labels"]["release"], "kube-prometheus-stack",
        "the label Prometheus selects rules by"
    );
    assert_eq!(
        rule["spec"],
        yaml(&rules_file()),
        "the PrometheusRule's spec is files/prometheus-rules.yaml verbatim"
    );
    // Helm did not evaluate the alert templates.
    let text = serde_yaml::to_string(&rule["spec"]).unwrap();
    assert!(text.contains("{{ $labels.namespace }}"), "{text}");
}

/// The ServiceMonitor keeps the order's namespace on the objects gauge.
#[test]
fn the_service_monitor_honours_the_operators_labels() {
    let docs = render(
        "so",
        "ops",
        &["--set", "metrics.serviceMonitor.enabled=true"],
    );
    let monitor = one(&docs, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
}
