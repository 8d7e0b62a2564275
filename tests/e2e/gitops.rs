//! Issue 13 item 8: the operator driven the GitOps way. The sample
//! manifests (config/samples) go into a local Git repository; each commit
//! is checked out and applied with `kubectl apply --prune -l <label>`, and
//! health is awaited the way a Flux Kustomization with `wait: true` awaits
//! it: poll every applied object through kstatus (the real cli-utils
//! library) until all are Current or one is Failed, with a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use serde::Deserialize;
use serde_yaml::Value;

use crate::kstatus::{Verdict, kstatus};
use crate::support::{Operator, emulator};

const LABEL: &str = "gitops.salesops.io/source";

/// How a health wait ended.
enum Health {
    Current,
    /// The Failed objects: (name, kstatus message).
    Failed(Vec<(String, String)>),
    /// The deadline passed: what was not Current yet.
    TimedOut(Vec<Verdict>),
}

/// Polls every labelled order and connection of `ns` through kstatus
/// until all are Current or any is Failed, or `deadline` passes.
async fn wait_healthy(client: &Client, ns: &str, selector: &str, deadline: Duration) -> Health {
    let end = Instant::now() + deadline;
    loop {
        let mut objects = Vec::new();
        for resource in [
            ApiResource::erase::<SalesOrderStatus>(&()),
            ApiResource::erase::<D365Connection>(&()),
        ] {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .expect("list");
            for item in list.items {
                let mut v = serde_json::to_value(&item).unwrap();
                v["kind"] = resource.kind.clone().into();
                objects.push(v);
            }
        }
        let verdicts = kstatus(&objects);
        let failed: Vec<_> = verdicts
            .iter()
            .filter(|v| v.status == "Failed")
            .map(|v| (v.name.clone(), v.message.clone()))
            .collect();
        if !failed.is_empty() {
            return Health::Failed(failed);
        }
        let pending: Vec<_> = verdicts
            .into_iter()
            .filter(|v| v.status != "Current")
            .collect();
        if pending.is_empty() && !objects.is_empty() {
            return Health::Current;
        }
        if Instant::now() > end {
            return Health::TimedOut(pending);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Panics unless `health` is Current, with what was not.
fn assert_current(health: Health, what: &str) {
    match health {
        Health::Current => {}
        Health::Failed(failed) => panic!("{what}: Failed {failed:?}"),
        Health::TimedOut(pending) => panic!("{what}: timed out on {pending:?}"),
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sample manifests of `file` for namespace `ns`, labelled, pointing
/// at the emulator `url`; the Namespace object is the test's own.
fn sample(file: &str, ns: &str, url: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/samples")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("sample manifests");
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v = Value::deserialize(doc).expect("sample YAML");
        if v.is_null() {
            continue;
        }
        v["metadata"]["namespace"] = ns.into();
        v["metadata"]["labels"][LABEL] = ns.into();
        if v["kind"] == "D365Connection" {
            v["spec"]["url"] = url.into();
            v["spec"]["auth"]["authorityUrl"] = url.into();
        }
        docs.push(v);
    }
    docs
}

/// A Git repository of manifests and the cluster namespace it syncs to.
struct Sync {
    cp: &'static testkit::ControlPlane,
    client: Client,
    ns: String,
    tmp: tempfile::TempDir,
    revisions: usize,
}

impl Sync {
    async fn new() -> Sync {
        let cp = testkit::control_plane().await;
        cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
            .await;
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("deploy")).unwrap();
        run(&repo, "git", &["init", "-q"]);
        run(
            &repo,
            "git",
            &["config", "user.email", "ci@salesops.example"],
        );
        run(&repo, "git", &["config", "user.name", "ci"]);
        Sync {
            cp,
            client: cp.client(),
            ns: cp.namespace("gitops").await,
            tmp,
            revisions: 0,
        }
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn selector(&self) -> String {
        format!("{LABEL}={}", self.ns)
    }

    /// Writes `docs` as `deploy/<file>` of the repository and commits them.
    fn commit(&self, file: &str, docs: &[Value], message: &str) {
        let text: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect();
        std::fs::write(self.repo().join("deploy").join(file), text.join("---\n")).unwrap();
        run(&self.repo(), "git", &["add", "-A"]);
        run(&self.repo(), "git", &["commit", "-q", "-m", message]);
    }

    /// Clones the repository's HEAD afresh (what a GitOps controller
    /// fetches), applies it with prune by label, and waits for health as
    /// Flux's `wait: true` does.
    async fn sync(&mut self, deadline: Duration) -> Health {
        self.revisions += 1;
        let checkout = self.tmp.path().join(format!("rev-{}", self.revisions));
        let repo = self.repo();
        let args = [
            "clone",
            "-q",
            repo.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ];
        run(self.tmp.path(), "git", &args);
        let (selector, dir) = (self.selector(), checkout.join("deploy"));
        let out = self.cp.kubectl(&[
            "apply",
            "-n",
            &self.ns,
            "--prune",
            "-l",
            &selector,
            "--prune-allowlist=core/v1/Secret",
            "--prune-allowlist=d365.salesops.io/v1alpha1/D365Connection",
            "--prune-allowlist=d365.salesops.io/v1alpha1/SalesOrderStatus",
            "-R",
            "-f",
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_healthy(&self.client, &self.ns, &selector, deadline).await
    }
}

fn order_doc<'a>(docs: &'a mut [Value], name: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("sample order {name}"))
}

const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_applied_with_prune_end_current_or_failed() {
    let mut git = Sync::new().await;
    let ns = git.ns.clone();
    let emu = emulator(10, d365_emulator::Faults::default()).await;
    let _op = Operator::start(git.cp.kubeconfig(), &ns, &[]);

    // Commit 1: the samples as they are.
    let connection = sample("10-connection.yaml", &ns, &emu.url());
    git.commit("10-connection.yaml", &connection, "connection");
    let mut orders = sample("20-orders.yaml", &ns, &emu.url());
    git.commit("20-orders.yaml", &orders, "orders");
    assert_current(git.sync(DEADLINE).await, "the samples converge");
    for (n, doc) in orders.iter().enumerate() {
        let number = doc["spec"]["salesOrderNumber"].as_str().unwrap();
        let got = emu.order("usmf", number).expect("emulator order")["SalesOrderStatus"].clone();
        assert_eq!(
            got,
            doc["spec"]["salesStatus"].as_str().unwrap(),
            "order {n}: D365 holds it before the wait passes"
        );
    }

    // Commit 2: one order changed, one removed from Git (pruned).
    order_doc(&mut orders, "so-2025-0001")["spec"]["salesStatus"] = "Invoiced".into();
    orders.retain(|d| d["metadata"]["name"] != "so-2025-0006");
    git.commit("20-orders.yaml", &orders, "invoice 0001, drop 0006");
    assert_current(git.sync(DEADLINE).await, "the change converges");
    let so1 = emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(
        so1["SalesOrderStatus"], "Invoiced",
        "healthy only once D365 holds the commit"
    );
    let api: Api<SalesOrderStatus> = Api::namespaced(git.client.clone(), &ns);
    assert!(
        api.get_opt("so-2025-0006").await.unwrap().is_none(),
        "pruned"
    );

    // Commit 3: an order D365 does not have. The wait fails on it, well
    // before its deadline, instead of timing out.
    let mut missing = orders[0].clone();
    missing["metadata"]["name"] = "so-2099-0001".into();
    missing["spec"]["salesOrderNumber"] = "SO-2099-0001".into();
    orders.push(missing);
    git.commit("20-orders.yaml", &orders, "an order D365 lacks");
    let started = Instant::now();
    let failed = match git.sync(DEADLINE).await {
        Health::Failed(failed) => failed,
        Health::Current => panic!("a stalled order must fail the wait"),
        Health::TimedOut(pending) => {
            panic!("a stalled order must fail the wait, not time it out: {pending:?}")
        }
    };
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "so-2099-0001");
    assert!(
        failed[0].1.contains("not found"),
        "kstatus carries the reason's message: {failed:?}"
    );
}
