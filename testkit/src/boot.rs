//! Starting etcd + kube-apiserver, from the supervisor thread.
//!
//! The supervisor thread spawns both processes (so their PDEATHSIG is bound
//! to a thread that never exits), waits for `/readyz`, hands the
//! [`ControlPlane`] back, then stays to report an unexpected child death —
//! otherwise a crashed apiserver shows up only as "connection refused" in
//! some unrelated test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::plane::ControlPlane;
use crate::{assets, kubeconfig, pki, process};

/// How long the apiserver may take to become ready; a cold start on two busy
/// cores takes well under a minute.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts when a child exits early (most likely a port taken meanwhile).
const ATTEMPTS: usize = 3;

/// A child process exited during start-up: worth another attempt.
#[derive(Debug)]
struct EarlyExit(String);

impl std::fmt::Display for EarlyExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EarlyExit {}

/// Starts the control plane on the supervisor thread and waits for it.
pub(crate) fn start() -> Result<ControlPlane> {
    let (tx, rx) = mpsc::channel();
    let (control, orders) = mpsc::channel();
    std::thread::Builder::new()
        .name("testkit-supervisor".into())
        .spawn(move || supervise(tx, orders))?;
    let mut plane = rx.recv().context("testkit supervisor thread died")??;
    plane.control = Some(control);
    Ok(plane)
}

/// What a test may ask of the supervisor, which alone may touch the
/// children (their PDEATHSIG is bound to its thread).
pub(crate) enum Control {
    /// SIGKILL kube-apiserver; etcd and its data stay.
    StopApiserver(mpsc::Sender<()>),
    /// Start kube-apiserver again on the same port and etcd; answers once
    /// `/readyz` is ok.
    StartApiserver(mpsc::Sender<Result<(), String>>),
}

/// The children of a running plane: etcd first, then kube-apiserver (absent
/// while stopped), and how to start kube-apiserver again.
struct Running {
    etcd: (PathBuf, Child),
    apiserver: Option<(PathBuf, Child)>,
    relaunch: Relaunch,
    restarts: usize,
}

fn supervise(tx: mpsc::Sender<Result<ControlPlane>>, orders: mpsc::Receiver<Control>) {
    let Some(mut running) = boot_with_retries(&tx) else {
        return;
    };
    // Return only when the plane is dropped (a private plane): returning
    // fires PDEATHSIG and kills the children, which is then what we want.
    let mut reported = false;
    loop {
        match orders.recv_timeout(Duration::from_millis(500)) {
            Ok(Control::StopApiserver(done)) => {
                if let Some((_, mut child)) = running.apiserver.take() {
                    process::kill(&mut child);
                }
                let _ = done.send(());
            }
            Ok(Control::StartApiserver(done)) => {
                let _ = done.send(restart_apiserver(&mut running).map_err(|e| format!("{e:#}")));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let children = running.apiserver.iter_mut().chain([&mut running.etcd]);
                children.for_each(|(_, c)| process::kill(c));
                let _ = std::fs::remove_dir_all(&running.relaunch.dir);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if reported || process::exiting() {
            continue;
        }
        for (log, child) in running.apiserver.iter().chain([&running.etcd]) {
            if process::has_exited(child) {
                eprintln!(
                    "testkit: {} exited unexpectedly:\n{}",
                    log.display(),
                    tail(log)
                );
                reported = true;
            }
        }
    }
}

/// Boots, retrying a start whose child exited early; sends the outcome.
fn boot_with_retries(tx: &mpsc::Sender<Result<ControlPlane>>) -> Option<Running> {
    let mut children = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match boot(&mut children) {
            Ok((plane, relaunch)) => {
                let _ = tx.send(Ok(plane));
                let apiserver = children.pop();
                let etcd = children.pop()?;
                return Some(Running {
                    etcd,
                    apiserver,
                    relaunch,
                    restarts: 0,
                });
            }
            Err(e) => {
                children
                    .drain(..)
                    .for_each(|(_, mut c)| process::kill(&mut c));
                let retry = e.downcast_ref::<EarlyExit>().is_some() && attempt < ATTEMPTS;
                if !retry {
                    let _ = tx.send(Err(e));
                    return None;
                }
                eprintln!("testkit: start attempt {attempt} failed, retrying: {e:#}");
            }
        }
    }
    let _ = tx.send(Err(anyhow!("no attempt made")));
    None
}

/// Starts kube-apiserver again with the flags of the first start and waits
/// until it is ready.
fn restart_apiserver(running: &mut Running) -> Result<()> {
    if running.apiserver.is_some() {
        return Ok(());
    }
    running.restarts += 1;
    let relaunch = &running.relaunch;
    let log = relaunch
        .dir
        .join(format!("kube-apiserver.restart-{}.log", running.restarts));
    let child = process::spawn(relaunch.command(), &log)?;
    running.apiserver = Some((log, child));
    let children: Vec<&(PathBuf, Child)> = std::iter::once(&running.etcd)
        .chain(running.apiserver.iter())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_ready(&relaunch.kubeconfig, &children))?;
    Ok(())
}

/// envtest's kube-apiserver flags: loopback only, RBAC, our certs, and
/// service-account tokens signed with our key.
fn apiserver_flags(certs: &Path, etcd_url: &str, api_port: u16) -> Vec<String> {
    let cert = |f: &str| certs.join(f).display().to_string();
    vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--secure-port={api_port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--cert-dir={}", certs.display()),
        format!("--client-ca-file={}", cert("ca.crt")),
        "--authorization-mode=RBAC".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        format!("--service-account-issuer=https://127.0.0.1:{api_port}"),
        format!("--service-account-key-file={}", cert("sa.pub")),
        format!("--service-account-signing-key-file={}", cert("sa.key")),
        "--allow-privileged=true".into(),
    ]
}

/// What starting kube-apiserver again needs: its program and flags.
struct Relaunch {
    program: PathBuf,
    args: Vec<String>,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Relaunch {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        cmd
    }
}

/// One start attempt; spawned children are pushed to `children` so the
/// caller can kill them if the attempt fails.
fn boot(children: &mut Vec<(PathBuf, Child)>) -> Result<(ControlPlane, Relaunch)> {
    let began = Instant::now();
    process::sweep_orphans();
    let assets = assets::locate()?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}{}-", process::DIR_PREFIX, std::process::id()))
        .tempdir()?
        .keep();
    process::remove_at_exit(dir.clone());
    let certs = dir.join("certs");
    std::fs::create_dir(&certs)?;
    let pki = pki::generate(&certs)?;
    let [etcd_port, peer_port, api_port] = process::free_ports()?;

    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = Command::new(assets.join("etcd"));
    etcd.arg("--name=testkit")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={etcd_url}"))
        .arg(format!("--advertise-client-urls={etcd_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=testkit={peer_url}"))
        .arg("--unsafe-no-fsync");
    let log = dir.join("etcd.log");
    children.push((log.clone(), process::spawn(etcd, &log)?));

    // No wait for etcd: the apiserver retries it, and /readyz covers it.
    let url = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = dir.join("kubeconfig");
    let relaunch = Relaunch {
        program: assets.join("kube-apiserver"),
        args: apiserver_flags(&certs, &etcd_url, api_port),
        kubeconfig: kubeconfig.clone(),
        dir: dir.clone(),
    };
    let api = relaunch.command();
    let log = dir.join("kube-apiserver.log");
    children.push((log.clone(), process::spawn(api, &log)?));

    kubeconfig::write(&kubeconfig, &url, &pki, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all: Vec<&(PathBuf, Child)> = children.iter().collect();
    let (config, version) = rt.block_on(wait_ready(&kubeconfig, &all))?;
    let startup = began.elapsed();
    // Straight to fd 2, not eprintln!: libtest captures the macros, and this
    // line (which server, how fast) belongs in every test run's output.
    let _ = writeln!(
        std::io::stderr(),
        "testkit: kube-apiserver {version} ready on {url} in {:.1}s (etcd + apiserver logs in {})",
        startup.as_secs_f64(),
        dir.display()
    );
    let plane = ControlPlane {
        url,
        version,
        dir,
        assets,
        kubeconfig,
        config,
        pki,
        startup,
        pids: children.iter().map(|(_, c)| c.id()).collect(),
        control: None,
    };
    Ok((plane, relaunch))
}

/// Polls `/readyz` until it answers `ok`, failing fast if a child exits.
async fn wait_ready(
    kubeconfig: &Path,
    children: &[&(PathBuf, Child)],
) -> Result<(kube::Config, String)> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config.clone())?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for (log, child) in children.iter().copied() {
            if process::has_exited(child) {
                return Err(EarlyExit(format!("{} exited:\n{}", log.display(), tail(log))).into());
            }
        }
        let req = http::Request::get("/readyz").body(Vec::new())?;
        let last =
            match tokio::time::timeout(Duration::from_secs(5), client.request_text(req)).await {
                Ok(Ok(body)) if body.trim() == "ok" => break,
                Ok(Ok(body)) => body,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "request timed out".into(),
            };
        if Instant::now() > deadline {
            let log = children
                .last()
                .map(|(log, _)| tail(log))
                .unwrap_or_default();
            bail!("kube-apiserver not ready after {READY_TIMEOUT:?}: {last}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = client.apiserver_version().await.context("GET /version")?;
    Ok((config, info.git_version))
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
