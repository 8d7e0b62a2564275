//! What a test gets: clients, kubeconfigs, namespaces, kubectl, CRDs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;

use crate::boot::Control;
use crate::pki::Pki;
use crate::{Proxy, assets, kubeconfig, wait_for};

/// A running etcd + kube-apiserver, shared by every test of one test binary.
/// Get it with [`crate::control_plane`]; it lives until the binary exits.
pub struct ControlPlane {
    pub(crate) url: String,
    pub(crate) version: String,
    pub(crate) dir: PathBuf,
    pub(crate) assets: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) config: kube::Config,
    pub(crate) pki: Pki,
    pub(crate) startup: Duration,
    pub(crate) pids: Vec<u32>,
    /// Orders to the supervisor thread; dropping it stops a private plane.
    pub(crate) control: Option<mpsc::Sender<Control>>,
}

static KUBECONFIGS: AtomicUsize = AtomicUsize::new(0);

impl ControlPlane {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The issuer of its ServiceAccount tokens: its own URL, so its OIDC
    /// discovery document and JWKS are served where the issuer says.
    pub fn service_account_issuer(&self) -> &str {
        &self.url
    }

    /// The CA that signed its serving certificate, as PEM: what a client
    /// fetching its OIDC discovery must trust.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("certs").join("ca.crt"))
            .unwrap_or_else(|e| panic!("testkit: reading the control plane's CA: {e}"))
    }

    /// The server's `gitVersion`, e.g. `v1.35.4`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How long etcd + kube-apiserver took to become ready.
    pub fn startup(&self) -> Duration {
        self.startup
    }

    /// Process ids of etcd and kube-apiserver as first started (for leak
    /// checks).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Temp dir with the certs, etcd data and both processes' logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Admin kubeconfig (user `admin`, group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Admin `kube::Config`, to tweak before building a client.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// A new admin client. A fresh one per call because a `kube::Client`
    /// runs a background task on the runtime that built it, and every
    /// `#[tokio::test]` has its own runtime. Call it inside a runtime.
    pub fn client(&self) -> Client {
        Client::try_from(self.config()).expect("building a kube client")
    }

    /// A client acting as `user` in `groups` (admin impersonation), e.g.
    /// `system:serviceaccount:ns:name`: the apiserver adds a ServiceAccount's
    /// own groups itself, so RBAC sees what that account would.
    pub fn client_impersonating(&self, user: &str, groups: &[&str]) -> Client {
        let mut config = self.config();
        config.auth_info.impersonate = Some(user.to_string());
        if !groups.is_empty() {
            config.auth_info.impersonate_groups =
                Some(groups.iter().map(|g| g.to_string()).collect());
        }
        Client::try_from(config).expect("building a kube client")
    }

    /// A kubeconfig file acting as `user` in `groups`, for kubectl or a
    /// subprocess (e.g. the operator run with its chart's ServiceAccount).
    pub fn kubeconfig_impersonating(&self, user: &str, groups: &[&str]) -> PathBuf {
        let n = KUBECONFIGS.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("kubeconfig-as-{n}"));
        kubeconfig::write(&path, &self.url, &self.pki, Some((user, groups)))
            .expect("writing kubeconfig");
        path
    }

    /// A kubeconfig like the admin one whose server is `proxy`, so a
    /// subprocess reaches the API server only through it (and a test can
    /// cut just that process off with [`Proxy::cut`]).
    pub fn kubeconfig_through(&self, proxy: &Proxy) -> PathBuf {
        let n = KUBECONFIGS.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("kubeconfig-via-{n}"));
        let server = format!("https://{}", proxy.addr());
        kubeconfig::write(&path, &server, &self.pki, None).expect("writing kubeconfig");
        path
    }

    /// Where the API server listens, for a [`Proxy`] in front of it.
    pub fn addr(&self) -> std::net::SocketAddr {
        let host_port = self.url.trim_start_matches("https://");
        host_port
            .parse()
            .expect("the apiserver URL is https://ip:port")
    }

    /// SIGKILLs kube-apiserver (etcd and its data stay), as a crashed or
    /// restarted control-plane node would. Use a [`crate::private_control_plane`]:
    /// on the shared one this would fail every other running test.
    pub async fn stop_apiserver(&self) {
        let (done, wait) = mpsc::channel();
        self.order(Control::StopApiserver(done));
        blocking_recv(wait).await.expect("supervisor answered");
    }

    /// Starts kube-apiserver again on the same port and etcd, and waits
    /// until it is ready. Panics if it does not come back.
    pub async fn start_apiserver(&self) {
        let (done, wait) = mpsc::channel();
        self.order(Control::StartApiserver(done));
        let started = blocking_recv(wait).await.expect("supervisor answered");
        if let Err(e) = started {
            panic!("testkit: kube-apiserver did not come back: {e}");
        }
    }

    fn order(&self, order: Control) {
        let control = self
            .control
            .as_ref()
            .expect("a started plane has a supervisor");
        control.send(order).expect("testkit supervisor is running");
    }

    /// Creates a namespace named `<prefix>-<random>` (server-generated, so
    /// unique) and returns its name. One per test keeps parallel tests apart.
    pub async fn namespace(&self, prefix: &str) -> String {
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", dns_label(prefix))),
                labels: Some([("testkit.salesops.io/test".into(), dns_label(prefix))].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {prefix}-*: {e}"));
        created.metadata.name.expect("server-generated name")
    }

    /// Runs kubectl (the envtest build's, matching the server, else the one
    /// on PATH) with `KUBECONFIG` set to the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig, args)
    }

    /// Like [`Self::kubectl`] with another kubeconfig (e.g. an impersonating one).
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        let bin = assets::kubectl(&self.assets);
        Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()))
    }

    /// Server-side applies every CustomResourceDefinition in the `*.yaml` /
    /// `*.yml` files of `dir` and waits until each is Established. Safe to
    /// call from many tests at once (same field manager: idempotent).
    /// Returns the CRD names. Panics on any failure.
    pub async fn apply_crds(&self, dir: &Path) -> Vec<String> {
        let api = Api::<CustomResourceDefinition>::all(self.client());
        let params = PatchParams::apply("testkit").force();
        let mut names = Vec::new();
        for crd in read_crds(dir) {
            let name = crd.metadata.name.clone().expect("CRD has a name");
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
            names.push(name);
        }
        for name in &names {
            wait_for(Duration::from_secs(30), || async {
                let crd = api.get(name).await.ok()?;
                let established = crd
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                established.then_some(())
            })
            .await
            .unwrap_or_else(|e| panic!("CRD {name} not Established: {e}"));
        }
        names
    }
}

/// Waits for a supervisor's answer off the async runtime.
async fn blocking_recv<T: Send + 'static>(rx: mpsc::Receiver<T>) -> Option<T> {
    tokio::task::spawn_blocking(move || rx.recv().ok())
        .await
        .ok()
        .flatten()
}

/// Parses every CRD document of the YAML files in `dir`, sorted by file name.
fn read_crds(dir: &Path) -> Vec<CustomResourceDefinition> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("reading CRD file");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if value.is_null() {
                continue; // empty document, e.g. a leading `---`
            }
            let crd = serde_yaml::from_value(value)
                .unwrap_or_else(|e| panic!("{}: not a CRD: {e}", file.display()));
            crds.push(crd);
        }
    }
    assert!(!crds.is_empty(), "no CRDs found in {}", dir.display());
    crds
}

/// Lower-case alphanumerics and `-`, short enough for a generated name.
fn dns_label(s: &str) -> String {
    let label: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "test".into()
    } else {
        label.into()
    }
}
