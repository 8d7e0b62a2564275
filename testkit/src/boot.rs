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
    std::thread::Builder::new()
        .name("testkit-supervisor".into())
        .spawn(move || supervise(tx))?;
    rx.recv().context("testkit supervisor thread died")?
}

fn supervise(tx: mpsc::Sender<Result<ControlPlane>>) {
    let mut outcome = Err(anyhow!("no attempt made"));
    let mut children = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match boot(&mut children) {
            Ok(plane) => {
                outcome = Ok(plane);
                break;
            }
            Err(e) => {
                children
                    .drain(..)
                    .for_each(|(_, mut c)| process::kill(&mut c));
                let retry = e.downcast_ref::<EarlyExit>().is_some() && attempt < ATTEMPTS;
                if !retry {
                    outcome = Err(e);
                    break;
                }
                eprintln!("testkit: start attempt {attempt} failed, retrying: {e:#}");
            }
        }
    }
    let ok = outcome.is_ok();
    let _ = tx.send(outcome);
    if !ok {
        return;
    }
    // Never return: returning would fire PDEATHSIG and kill the children.
    let mut reported = false;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if reported || process::exiting() {
            continue;
        }
        for (log, child) in &children {
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

/// One start attempt; spawned children are pushed to `children` so the
/// caller can kill them if the attempt fails.
fn boot(children: &mut Vec<(PathBuf, Child)>) -> Result<ControlPlane> {
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
    let mut api = Command::new(assets.join("kube-apiserver"));
    let cert = |f: &str| certs.join(f).display().to_string();
    api.arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!("--secure-port={api_port}"))
        .arg("--bind-address=127.0.0.1")
        .arg("--advertise-address=127.0.0.1")
        .arg(format!("--cert-dir={}", certs.display()))
        .arg(format!("--client-ca-file={}", cert("ca.crt")))
        .arg("--authorization-mode=RBAC")
        .arg("--service-cluster-ip-range=10.0.0.0/24")
        .arg("--disable-admission-plugins=ServiceAccount")
        .arg(format!("--service-account-issuer={url}"))
        .arg(format!("--service-account-key-file={}", cert("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            cert("sa.key")
        ))
        .arg("--allow-privileged=true");
    let log = dir.join("kube-apiserver.log");
    children.push((log.clone(), process::spawn(api, &log)?));

    let kubeconfig = dir.join("kubeconfig");
    kubeconfig::write(&kubeconfig, &url, &pki, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (config, version) = rt.block_on(wait_ready(&kubeconfig, children))?;
    let startup = began.elapsed();
    // Straight to fd 2, not eprintln!: libtest captures the macros, and this
    // line (which server, how fast) belongs in every test run's output.
    let _ = writeln!(
        std::io::stderr(),
        "testkit: kube-apiserver {version} ready on {url} in {:.1}s (etcd + apiserver logs in {})",
        startup.as_secs_f64(),
        dir.display()
    );
    Ok(ControlPlane {
        url,
        version,
        dir,
        assets,
        kubeconfig,
        config,
        pki,
        startup,
        pids: children.iter().map(|(_, c)| c.id()).collect(),
    })
}

/// Polls `/readyz` until it answers `ok`, failing fast if a child exits.
async fn wait_ready(
    kubeconfig: &Path,
    children: &[(PathBuf, Child)],
) -> Result<(kube::Config, String)> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    let client = kube::Client::try_from(config.clone())?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        for (log, child) in children {
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
            let log = &children[children.len() - 1].0;
            bail!(
                "kube-apiserver not ready after {READY_TIMEOUT:?}: {last}\n{}",
                tail(log)
            );
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
