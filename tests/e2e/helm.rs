//! helm for the chart tests: the binary from `hack/tools/helm.sh` (built
//! from its Go module once, or `$HELM`), and rendered manifests as YAML
//! values.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml::Value;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub fn chart_dir() -> PathBuf {
    Path::new(ROOT).join("charts/sales-order-operator")
}

/// A tool that `hack/tools/<script>` builds or fetches once into the cache
/// and prints the path of. Fails the test (never skips) when it cannot be
/// had; `hint` says what the script needs.
pub fn tool(script: &str, hint: &str) -> PathBuf {
    let script = Path::new(ROOT).join("hack/tools").join(script);
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({hint}):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(
        path.is_file(),
        "{} printed {}, which is not a file",
        script.display(),
        path.display()
    );
    path
}

/// The helm binary.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        tool(
            "helm.sh",
            "helm is needed for the chart tests: it needs Go and the Go module proxy, or set HELM=/path/to/helm",
        )
    })
}

pub fn run_helm(args: &[&str]) -> Output {
    Command::new(helm()).args(args).output().expect("helm runs")
}

/// `helm template <release> <chart> -n <namespace> <extra...>`; panics with
/// helm's stderr on failure.
pub fn template(release: &str, namespace: &str, extra: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Rendered documents (empty ones dropped).
pub fn render(release: &str, namespace: &str, extra: &[&str]) -> Vec<Value> {
    parse_docs(&template(release, namespace, extra))
}

pub fn parse_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn to_yaml(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect()
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("")
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace(doc: &Value) -> &str {
    doc["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

/// The one document of kind `k`.
pub fn one<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let all = of_kind(docs, k);
    assert_eq!(all.len(), 1, "expected one {k}, got {}", all.len());
    all[0]
}

/// The operator container's environment as (name, value or fieldPath).
pub fn env(docs: &[Value]) -> Vec<(String, String)> {
    env_of(one(docs, "Deployment"))
}

/// The environment of one Deployment's operator container (with shards
/// the chart renders several).
pub fn env_of(deployment: &Value) -> Vec<(String, String)> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    container["env"]
        .as_sequence()
        .expect("container env")
        .iter()
        .map(|e| {
            let value = e["value"]
                .as_str()
                .or_else(|| e["valueFrom"]["fieldRef"]["fieldPath"].as_str())
                .unwrap_or("")
                .to_owned();
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

pub fn env_var(docs: &[Value], var: &str) -> Option<String> {
    env(docs)
        .into_iter()
        .find(|(n, _)| n == var)
        .map(|(_, v)| v)
}
