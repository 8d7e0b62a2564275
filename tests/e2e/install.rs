//! Helpers of tests/chart_rbac.rs: the chart rendered and applied as
//! `helm install` would (minus the workload), the operator started as its
//! pod would be, and waits on order conditions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::api::ListParams;
use kube::{Api, Client};
use sales_order_operator::api::SalesOrderStatus;
use serde_yaml::Value;
use testkit::ControlPlane;

use super::support::{Operator, ready_reasons};

pub const TIMEOUT: Duration = Duration::from_secs(90);

/// What `helm install` would create, minus the workload.
pub struct Install {
    pub release_ns: String,
    pub docs: Vec<Value>,
}

impl Install {
    pub async fn render(cp: &ControlPlane, prefix: &str, values: &[&str]) -> Install {
        cp.apply_crds(&Path::new(crate::helm::ROOT).join("crds"))
            .await;
        let release_ns = cp.namespace(prefix).await;
        // The emulator, on loopback, is the tests' Entra.
        let mut args: Vec<&str> = vec!["--set", "allowedAuthorityHosts={127.0.0.1}"];
        for v in values {
            args.extend(["--set", v]);
        }
        // The release is named after its namespace: cluster-scoped names
        // (ClusterRole) stay unique across the tests of this binary.
        let docs = crate::helm::render(&release_ns, &release_ns, &args);
        Install { release_ns, docs }
    }

    pub fn service_account(&self) -> String {
        crate::helm::name(crate::helm::one(&self.docs, "ServiceAccount")).to_owned()
    }

    /// The rules of the operator's (Cluster)Role(s), to edit before applying.
    pub fn operator_rules(&mut self) -> Vec<&mut Value> {
        self.docs
            .iter_mut()
            .filter(|d| {
                matches!(crate::helm::kind(d), "Role" | "ClusterRole")
                    && !crate::helm::name(d).ends_with("-leader-election")
            })
            .map(|d| &mut d["rules"])
            .collect()
    }

    /// kubectl apply of the ServiceAccount and RBAC documents.
    pub fn apply(&self, cp: &ControlPlane) {
        let rbac: Vec<Value> = self
            .docs
            .iter()
            .filter(|d| {
                matches!(
                    crate::helm::kind(d),
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            })
            .cloned()
            .collect();
        let file = cp.dir().join(format!("{}-rbac.yaml", self.release_ns));
        std::fs::write(&file, crate::helm::to_yaml(&rbac)).unwrap();
        let out = cp.kubectl(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A kubeconfig acting as the chart's ServiceAccount, with the groups
    /// the apiserver gives every ServiceAccount token.
    pub fn kubeconfig(&self, cp: &ControlPlane) -> PathBuf {
        let user = format!(
            "system:serviceaccount:{}:{}",
            self.release_ns,
            self.service_account()
        );
        let group = format!("system:serviceaccounts:{}", self.release_ns);
        cp.kubeconfig_impersonating(
            &user,
            &["system:serviceaccounts", &group, "system:authenticated"],
        )
    }

    /// Starts the operator as the pod would: the Deployment's env turned
    /// into the binary's flags (mapped through its own `--help`), fieldRefs
    /// resolved as the kubelet would.
    pub fn start_operator(&self, cp: &ControlPlane, pod: &str) -> Operator {
        self.start_operator_of(cp, pod, crate::helm::one(&self.docs, "Deployment"))
    }

    /// [`Self::start_operator`] for a pod of `deployment` (one of a
    /// sharded install's).
    pub fn start_operator_of(&self, cp: &ControlPlane, pod: &str, deployment: &Value) -> Operator {
        let flags = env_flags();
        let mut watch = String::new();
        let mut args: Vec<String> = Vec::new();
        for (var, value) in crate::helm::env_of(deployment) {
            let value = match value.as_str() {
                "metadata.name" => pod.to_owned(),
                "metadata.namespace" => self.release_ns.clone(),
                _ => value,
            };
            match var.as_str() {
                "WATCH_NAMESPACE" => watch = value,
                // The harness picks the port and the log format.
                "HTTP_ADDR" | "LOG_FORMAT" | "RUST_LOG" => {}
                _ => {
                    let (flag, takes_value) = flags
                        .iter()
                        .find(|(v, _, _)| *v == var)
                        .map(|(_, f, t)| (f, *t))
                        .unwrap_or_else(|| panic!("no flag reads {var}"));
                    if takes_value {
                        args.extend([flag.clone(), value]);
                    } else if value == "true" {
                        args.push(flag.clone());
                    }
                }
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Operator::start(&self.kubeconfig(cp), &watch, &args)
    }
}

/// (env var, flag, takes a value) from `sales-order-operator run --help`.
fn env_flags() -> Vec<(String, String, bool)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-order-operator"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut found = Vec::new();
    let mut flag: Option<(String, bool)> = None;
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("--") {
            let mut words = rest.split_whitespace();
            flag = Some((
                format!("--{}", words.next().unwrap()),
                words.next().is_some_and(|w| w.starts_with('<')),
            ));
        } else if let (Some(at), Some((f, takes))) = (line.find("[env: "), &flag) {
            let var = line[at + 6..].split('=').next().unwrap();
            found.push((var.to_owned(), f.clone(), *takes));
        }
    }
    assert!(
        found.len() >= 10,
        "could not read the flags from --help:\n{help}"
    );
    found
}

/// Waits for every order in `ns` (at least `count`) to satisfy `check` on
/// its Ready condition (status, reason, message); panics with the operator's
/// log when it does not.
pub async fn wait_orders(
    client: &Client,
    ns: &str,
    count: usize,
    op: &Operator,
    what: &str,
    check: impl Fn(&str, &str, &str) -> bool,
) {
    let api: Api<SalesOrderStatus> = Api::namespaced(client.clone(), ns);
    let done = testkit::wait_for(TIMEOUT, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let ok = list
            .items
            .iter()
            .filter(|o| {
                o.ready_condition()
                    .is_some_and(|c| check(&c.status, &c.reason, &c.message))
            })
            .count();
        (list.items.len() >= count && ok == list.items.len()).then_some(())
    })
    .await;
    if done.is_err() {
        panic!(
            "orders in {ns} never became {what}: {:?}\noperator log:\n{}",
            ready_reasons(client, ns).await,
            op.logs()
        );
    }
}

pub fn ready(status: &str, reason: &str, _: &str) -> bool {
    status == "True" && (reason == "Updated" || reason == "InSync")
}

/// `kubectl auth can-i` as the ServiceAccount.
pub fn can_i(cp: &ControlPlane, kubeconfig: &Path, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = cp.kubectl_with(kubeconfig, &all);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}
