//! The chart's values schema refuses unknown keys at every level (a typo
//! is an error, not a silently ignored setting), and the CRDs are templates
//! behind `crds.install` / `crds.keep` whose content is the repository's
//! crds/crds.yaml.

use std::path::Path;

use serde_json::Value as Json;
use serde_yaml::Value;

use crate::helm::{ROOT, chart_dir, kind, of_kind, parse_docs, render, run_helm};

/// `helm template` with `--set`s; its failure output when it fails.
fn template_error(sets: &[&str]) -> Option<String> {
    let chart = chart_dir();
    let mut args = vec!["template", "so", chart.to_str().unwrap(), "-n", "ops"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let out = run_helm(&args);
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_top_level_typo_fails_with_a_schema_error() {
    let err = template_error(&["replicacount=3"]).expect("--set replicacount=3 was accepted");
    assert!(
        err.contains("values don't meet the specifications of the schema")
            && err.contains("additional properties 'replicacount' not allowed"),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    for (set, at, key) in [
        ("image.tg=v1", "/image", "tg"),
        ("crds.kep=false", "/crds", "kep"),
        ("rbac.scopes=cluster", "/rbac", "scopes"),
        (
            "serviceAccount.annotation.a=b",
            "/serviceAccount",
            "annotation",
        ),
        (
            "leaderElection.leaseDuration=15",
            "/leaderElection",
            "leaseDuration",
        ),
        ("operator.resync=1m", "/operator", "resync"),
        (
            "workloadIdentity.enable=true",
            "/workloadIdentity",
            "enable",
        ),
        (
            "podDisruptionBudget.minAvailable=1",
            "/podDisruptionBudget",
            "minAvailable",
        ),
        (
            "metrics.servicemonitor.enabled=true",
            "/metrics",
            "servicemonitor",
        ),
        ("metrics.service.portt=1", "/metrics/service", "portt"),
        (
            "metrics.serviceMonitor.intervall=1m",
            "/metrics/serviceMonitor",
            "intervall",
        ),
        ("prometheusRule.label.a=b", "/prometheusRule", "label"),
    ] {
        let err = template_error(&[set]).unwrap_or_else(|| panic!("{set} was accepted"));
        assert!(
            err.contains(&format!(
                "at '{at}': additional properties '{key}' not allowed"
            )),
            "{set}: {err}"
        );
    }
}

/// Free-form maps stay open: whatever Kubernetes accepts there.
#[test]
fn free_form_maps_stay_open() {
    let sets = [
        "podAnnotations.example\\.com/team=sales",
        "podLabels.team=sales",
        "nodeSelector.kubernetes\\.io/os=linux",
        "resources.limits.cpu=1",
        "serviceAccount.annotations.azure\\.workload\\.identity/client-id=x",
        "metrics.service.annotations.a=b",
        "metrics.serviceMonitor.labels.release=prom",
        "prometheusRule.labels.release=prom",
        "securityContext.privileged=false",
        "affinity.nodeAffinity.x=y",
        "global.imageRegistry=example.com",
    ];
    assert_eq!(template_error(&sets), None);
}

/// Walks the schema: an object that lists its properties refuses others;
/// an object without a property list is a free-form map, allowed only
/// where Kubernetes takes one.
#[test]
fn every_object_in_the_schema_is_closed_or_a_known_free_form_map() {
    const FREE_FORM: &[&str] = &[
        "/global",
        "/serviceAccount/annotations",
        "/resources",
        "/podSecurityContext",
        "/securityContext",
        "/livenessProbe",
        "/readinessProbe",
        "/podAnnotations",
        "/podLabels",
        "/nodeSelector",
        "/affinity",
        "/extraEnv/items",
        "/metrics/service/annotations",
        "/metrics/serviceMonitor/labels",
        "/prometheusRule/labels",
    ];
    fn walk(at: &str, schema: &Json, open: &mut Vec<String>, closed: &mut usize) {
        if let Some(props) = schema["properties"].as_object() {
            assert_eq!(
                schema["additionalProperties"],
                Json::Bool(false),
                "{at:?} lists properties but accepts others"
            );
            *closed += 1;
            for (k, v) in props {
                walk(&format!("{at}/{k}"), v, open, closed);
            }
        } else if schema["type"] == "object" {
            open.push(at.to_owned());
        }
        if schema["items"].is_object() {
            walk(&format!("{at}/items"), &schema["items"], open, closed);
        }
    }
    let text = std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap();
    let schema: Json = serde_json::from_str(&text).unwrap();
    let (mut open, mut closed) = (Vec::new(), 0);
    walk("", &schema, &mut open, &mut closed);
    assert!(closed >= 12, "only {closed} closed objects");
    let unexpected: Vec<_> = open
        .iter()
        .filter(|p| !FREE_FORM.contains(&p.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "open objects: {unexpected:?}");
}

fn repo_crds() -> Vec<Value> {
    let repo = Path::new(ROOT).join("crds/crds.yaml");
    parse_docs(&std::fs::read_to_string(repo).unwrap())
}

fn rendered_crds(sets: &[&str]) -> Vec<Value> {
    let mut args = Vec::new();
    for s in sets {
        args.extend(["--set", s]);
    }
    render("so", "ops", &args)
        .into_iter()
        .filter(|d| kind(d) == "CustomResourceDefinition")
        .collect()
}

#[test]
fn chart_crds_are_the_repository_crds_not_a_copy() {
    let link = chart_dir().join("files/crds.yaml");
    let target = std::fs::read_link(&link)
        .expect("charts/sales-order-operator/files/crds.yaml is a symlink");
    assert_eq!(target, Path::new("../../../crds/crds.yaml"));
    // Helm's crds/ folder cannot be switched off: the CRDs are templates.
    assert!(
        !chart_dir().join("crds").exists(),
        "charts/sales-order-operator/crds/ would install the CRDs whatever crds.install says"
    );

    // crds.keep=false: exactly the repository's documents.
    assert_eq!(rendered_crds(&["crds.keep=false"]), repo_crds());

    // Default: the same, with the keep policy as their only annotation.
    let kept = rendered_crds(&[]);
    assert_eq!(kept.len(), 2);
    let mut stripped = kept.clone();
    for crd in &mut stripped {
        let annotations = &crd["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{crd:?}");
        assert_eq!(annotations.as_mapping().map(|m| m.len()), Some(1));
        crd["metadata"]
            .as_mapping_mut()
            .unwrap()
            .remove("annotations");
    }
    assert_eq!(stripped, repo_crds());
}

#[test]
fn crds_install_false_renders_no_crd_and_everything_else() {
    let with = render("so", "ops", &[]);
    let without = render("so", "ops", &["--set", "crds.install=false"]);
    assert!(of_kind(&without, "CustomResourceDefinition").is_empty());
    assert_eq!(with.len(), without.len() + 2);
    assert!(of_kind(&without, "Deployment").len() == 1);
}
