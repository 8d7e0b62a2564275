//! The health readers the GitOps tools use, on live objects: the real
//! kstatus library (hack/kstatus, built by `hack/tools/kstatus.sh` from
//! sigs.k8s.io/cli-utils: what Flux's health checks run), the Argo CD Lua
//! scripts, and `kubectl wait --for=condition=Ready`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use serde::Deserialize;
use serde_json::Value;

/// The kstatus evaluator.
pub fn kstatus_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        crate::helm::tool(
            "kstatus.sh",
            "the kstatus evaluator needs Go and the Go module proxy, or set KSTATUS=/path/to/kstatus",
        )
    })
}

/// `status.Compute`'s answer for one object.
#[derive(Debug, Deserialize, Clone, PartialEq)]
pub struct Verdict {
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    pub status: String,
    pub message: String,
}

/// kstatus on each of `objects`, in order.
pub fn kstatus(objects: &[Value]) -> Vec<Verdict> {
    let mut child = Command::new(kstatus_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kstatus evaluator starts");
    let mut stdin = child.stdin.take().unwrap();
    for o in objects {
        serde_json::to_writer(&mut stdin, o).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kstatus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<Verdict> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a kstatus verdict line"))
        .collect();
    assert_eq!(verdicts.len(), objects.len());
    verdicts
}

/// Every order and connection of `ns`, as the API server returns them
/// (JSON, untouched by the Rust types), keyed by (kind, name).
pub async fn live_objects(client: &Client, ns: &str) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for resource in [
        ApiResource::erase::<SalesOrderStatus>(&()),
        ApiResource::erase::<D365Connection>(&()),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let list = api.list(&ListParams::default()).await.expect("list");
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            let mut value = serde_json::to_value(&item).unwrap();
            value["kind"] = resource.kind.clone().into();
            value["apiVersion"] = resource.api_version.clone().into();
            out.push((resource.kind.clone(), name, value));
        }
    }
    out
}

/// Argo CD's `hs.status` for a live object of `kind`.
pub fn argocd(kind: &str, obj: &Value) -> String {
    let script = match kind {
        "SalesOrderStatus" => crate::argocd_lua::ORDER_SCRIPT,
        "D365Connection" => crate::argocd_lua::CONNECTION_SCRIPT,
        other => panic!("no Argo CD health script for {other}"),
    };
    crate::argocd_lua::health(script, obj).0
}

/// `kubectl wait --for=condition=Ready --timeout=0s` (check once): `met`,
/// or `waits` when the condition does not hold.
pub fn kubectl_wait(cp: &testkit::ControlPlane, ns: &str, kind: &str, name: &str) -> String {
    let resource = match kind {
        "SalesOrderStatus" => "salesorderstatuses.d365.salesops.io",
        "D365Connection" => "d365connections.d365.salesops.io",
        other => panic!("unknown kind {other}"),
    };
    let target = format!("{resource}/{name}");
    let args = [
        "wait",
        "--for=condition=Ready",
        "--timeout=0s",
        "-n",
        ns,
        &target,
    ];
    let out = cp.kubectl(&args);
    if out.status.success() {
        return "met".into();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        // With --timeout=0s kubectl checks once: "condition not met".
        stderr.contains("condition not met") || stderr.contains("timed out"),
        "kubectl {args:?} failed otherwise than by waiting: {stderr}"
    );
    "waits".into()
}
