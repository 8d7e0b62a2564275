//! Shared pieces of the end-to-end tests: an emulator on loopback, a
//! D365Connection + Secret pointing at it (built from
//! `sales_order_operator::fixtures`), and the real operator binary run as
//! a subprocess against the test control plane.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use d365_emulator::{Config, Emulator, Faults};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures;

/// An emulator with `n` generated orders (SO-2025-0001.., company usmf).
pub async fn emulator(n: usize, faults: Faults) -> Emulator {
    let config = Config {
        orders: d365_emulator::generate_orders(n, 7),
        faults,
        ..Config::default()
    };
    Emulator::start(config).await.expect("emulator starts")
}

/// Creates the fixture Secret and D365Connection in `ns`, pointing at `emu`.
pub async fn connect(client: &Client, ns: &str, emu: &Emulator) {
    put_secret(client, ns).await;
    create_connection(client, ns, D365Connection::test(&emu.url())).await;
}

/// Creates the fixture Secret (the emulator's client secret, labelled as
/// credentials) in `ns`.
pub async fn put_secret(client: &Client, ns: &str) {
    create_secret(client, ns, fixtures::secret()).await;
}

pub async fn create_secret(client: &Client, ns: &str, secret: Secret) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

pub async fn create_connection(client: &Client, ns: &str, connection: D365Connection) {
    let conns: Api<D365Connection> = Api::namespaced(client.clone(), ns);
    conns
        .create(&PostParams::default(), &connection)
        .await
        .expect("create connection");
}

pub async fn create_orders(
    client: &Client,
    ns: &str,
    orders: impl IntoIterator<Item = SalesOrderStatus>,
) {
    let api: Api<SalesOrderStatus> = Api::namespaced(client.clone(), ns);
    for o in orders {
        api.create(&PostParams::default(), &o)
            .await
            .expect("create order");
    }
}

/// Creates `orders` through `api`, `at_once` requests in flight: fleets of
/// thousands would take minutes one by one.
pub async fn create_orders_concurrently(
    api: &Api<SalesOrderStatus>,
    orders: impl IntoIterator<Item = SalesOrderStatus>,
    at_once: usize,
) {
    use futures::StreamExt;
    futures::stream::iter(orders)
        .for_each_concurrent(at_once, |o| async move {
            api.create(&PostParams::default(), &o)
                .await
                .expect("create order");
        })
        .await;
}

/// Ready reason of every order in `ns`, by name.
pub async fn ready_reasons(
    client: &Client,
    ns: &str,
) -> Vec<(String, Option<String>, Option<String>)> {
    let api: Api<SalesOrderStatus> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.expect("list orders");
    list.items
        .iter()
        .map(|o| {
            let c = o.ready_condition();
            (
                kube::ResourceExt::name_any(o),
                c.map(|c| c.status.clone()),
                c.map(|c| c.reason.clone()),
            )
        })
        .collect()
}

/// Waits until every order in `ns` (at least `count`) has Ready reason in
/// `reasons`; returns the list or panics with the stragglers.
pub async fn wait_all(
    client: &Client,
    ns: &str,
    count: usize,
    reasons: &[&str],
    timeout: Duration,
) {
    let result = testkit::wait_for(timeout, || async {
        let all = ready_reasons(client, ns).await;
        let done = all
            .iter()
            .filter(|(_, _, r)| r.as_deref().is_some_and(|r| reasons.contains(&r)))
            .count();
        (all.len() >= count && done == all.len()).then_some(())
    })
    .await;
    if result.is_err() {
        let all = ready_reasons(client, ns).await;
        let stragglers: Vec<_> = all
            .iter()
            .filter(|(_, _, r)| !r.as_deref().is_some_and(|r| reasons.contains(&r)))
            .take(10)
            .collect();
        panic!("not all {count} orders reached {reasons:?} in {timeout:?}; e.g. {stragglers:?}");
    }
}

/// The operator build the heavy runs use: `SCALE_OPERATOR_BIN` (e.g. a
/// release build, or one saved before a change), else the test build.
pub fn operator_bin() -> std::path::PathBuf {
    std::env::var_os("SCALE_OPERATOR_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_sales-order-operator")))
}

/// The operator binary, running against the test control plane; killed on
/// drop. Its log goes to a file in the control plane's temp dir.
pub struct Operator {
    child: Child,
    pub http: String,
    pub log: std::path::PathBuf,
}

impl Operator {
    pub fn start(kubeconfig: &Path, namespace: &str, extra: &[&str]) -> Operator {
        Self::start_bin(
            Path::new(env!("CARGO_BIN_EXE_sales-order-operator")),
            kubeconfig,
            namespace,
            extra,
        )
    }

    /// As [`Operator::start`], with another build of the operator (the
    /// scale test compares one saved before a change).
    pub fn start_bin(bin: &Path, kubeconfig: &Path, namespace: &str, extra: &[&str]) -> Operator {
        Self::start_logging(
            bin,
            kubeconfig,
            namespace,
            extra,
            "info,sales_order_operator=debug",
        )
    }

    /// As [`Operator::start_bin`], logging at `rust_log` (`make bench` runs
    /// at `info`: debug lines for 100,000 orders would cost CPU and disk).
    pub fn start_logging(
        bin: &Path,
        kubeconfig: &Path,
        namespace: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> Operator {
        Self::start_with_env(bin, kubeconfig, namespace, extra, rust_log, &[])
    }

    /// As [`Operator::start_logging`], with extra environment variables
    /// (the traces test sets `OTEL_*`).
    pub fn start_with_env(
        bin: &Path,
        kubeconfig: &Path,
        namespace: &str,
        extra: &[&str],
        rust_log: &str,
        env: &[(&str, &str)],
    ) -> Operator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("operator-{namespace}-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args([
                "run",
                "--namespace",
                namespace,
                "--http-addr",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            // The emulator, on loopback (by IP or name), is the tests' Entra; a flag in
            // `extra` still wins over this.
            .env("ALLOWED_AUTHORITY_HOSTS", "127.0.0.1,localhost")
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("operator binary starts");
        Operator {
            child,
            http: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// `/metrics` text (empty while the server is not up yet).
    pub async fn metrics(&self) -> String {
        match reqwest::get(format!("{}/metrics", self.http)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Sum of a metric's samples whose line starts with `prefix`.
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The process id, to read its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident set (`VmHWM`) so far, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        Some(crate::procfs::status_kib(self.child.id(), "VmHWM:")? * 1024)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How the process ended, once it has (it is not waited for).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, as a crashed node would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit; returns its success.
    pub fn terminate(&mut self) -> bool {
        testkit::terminate(&self.child);
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A namespace on the shared control plane with CRDs applied, an emulator
/// holding `n` orders, and a D365Connection to it.
pub struct Env {
    pub cp: &'static testkit::ControlPlane,
    pub client: Client,
    pub ns: String,
    pub emu: Emulator,
}

pub async fn env(prefix: &str, n: usize, faults: Faults) -> Env {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let client = cp.client();
    let ns = cp.namespace(prefix).await;
    let emu = emulator(n, faults).await;
    connect(&client, &ns, &emu).await;
    Env {
        cp,
        client,
        ns,
        emu,
    }
}

/// Waits until order `name` has Ready reason `reason`; returns it.
pub async fn wait_reason(env: &Env, name: &str, reason: &str) -> SalesOrderStatus {
    wait_reason_in(&env.orders(), name, reason, Duration::from_secs(60)).await
}

/// Waits up to `timeout` until order `name` of `orders` has Ready reason
/// `reason`; returns it.
pub async fn wait_reason_in(
    orders: &Api<SalesOrderStatus>,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> SalesOrderStatus {
    testkit::wait_for(timeout, || async {
        let o = orders.get(name).await.ok()?;
        (o.ready_condition()?.reason == reason).then_some(o)
    })
    .await
    .unwrap_or_else(|_| panic!("{name} never reached {reason} within {timeout:?}"))
}

impl Env {
    pub fn orders(&self) -> Api<SalesOrderStatus> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn operator(&self, extra: &[&str]) -> Operator {
        Operator::start(self.cp.kubeconfig(), &self.ns, extra)
    }

    /// Requests the emulator saw for one order number (a bulk read that
    /// returned it counts).
    pub fn requests_for(&self, number: &str) -> usize {
        self.emu
            .requests()
            .iter()
            .filter(|r| {
                r.sales_order_number.as_deref() == Some(number)
                    || r.rows.iter().any(|n| n == number)
            })
            .count()
    }

    /// Accepted client writes (PATCH) the emulator recorded.
    pub fn client_writes(&self) -> Vec<d365_emulator::WriteRecord> {
        self.emu
            .history()
            .into_iter()
            .filter(|w| w.source == d365_emulator::WriteSource::Client && w.accepted)
            .collect()
    }
}
