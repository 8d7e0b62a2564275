//! The promise that matters most: etcd and kube-apiserver never outlive the
//! test binary, whether it ends normally after a failed test (atexit) or is
//! SIGKILLed (PDEATHSIG). Each case re-runs this binary as a child that
//! starts a control plane, reports its pids, then fails or hangs. A private
//! plane also survives a kube-apiserver restart, reaches a client through a
//! proxy that can be cut, and goes when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODE: &str = "TESTKIT_CLEANUP_CHILD";

/// The child side; ignored unless the parent asks for it.
#[test]
#[ignore = "run by the other tests of this file as a subprocess"]
fn child() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let cp = testkit::control_plane_blocking();
    let pids: Vec<String> = cp.pids().iter().map(u32::to_string).collect();
    println!("PLANE {} {}", cp.dir().display(), pids.join(" "));
    match mode.as_str() {
        "panic" => panic!("a failing test"),
        _ => std::thread::sleep(Duration::from_secs(600)),
    }
}

/// Runs the child, returns its control plane's dir and pids once started.
/// The caller waits for (or kills) the child.
#[allow(clippy::zombie_processes)]
fn start_child(mode: &str) -> (std::process::Child, PathBuf, Vec<i32>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture"])
        .env(MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("PLANE ") {
            let mut parts = rest.split(' ');
            let dir = PathBuf::from(parts.next().unwrap());
            let pids = parts.map(|p| p.parse().unwrap()).collect();
            return (child, dir, pids);
        }
    }
    panic!("child exited without starting a control plane");
}

/// Gone or a zombie awaiting its new parent's reaping: either way, dead.
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
    }
}

fn assert_all_dead(pids: &[i32]) {
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| dead(p)) {
        assert!(Instant::now() < deadline, "still running: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn processes_and_temp_dir_go_when_a_test_fails() {
    let (mut child, dir, pids) = start_child("panic");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(101), "libtest's failure exit");
    assert_all_dead(&pids);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn processes_go_when_the_test_binary_is_killed() {
    let (mut child, dir, pids) = start_child("hang");
    child.kill().unwrap(); // SIGKILL: no atexit, only PDEATHSIG is left
    child.wait().unwrap();
    assert_all_dead(&pids);
    // Its temp dir stays until the next start's sweep; tidy up now.
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn guarded_child_dies_with_its_spawning_thread() {
    let pid = std::thread::spawn(|| {
        let guarded = testkit::spawn_guarded(Command::new("sleep").arg("600")).unwrap();
        let pid = guarded.id() as i32;
        std::mem::forget(guarded); // no Drop: only PDEATHSIG can stop it now
        pid
    })
    .join()
    .unwrap();
    assert_all_dead(&[pid, pid]);
}

/// A ConfigMap written before a kube-apiserver restart is read after it
/// (same etcd, same port); a client behind a cut proxy fails while the
/// direct one works; dropping the plane ends its processes and files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_plane_restarts_its_apiserver_and_goes_when_dropped() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::{ObjectMeta, PostParams};

    let cp = testkit::private_control_plane().await;
    let pids: Vec<i32> = cp.pids().iter().map(|&p| p as i32).collect();
    let dir = cp.dir().to_path_buf();
    let config_maps = |client| Api::<ConfigMap>::namespaced(client, "default");
    let marker = ConfigMap {
        metadata: ObjectMeta {
            name: Some("survives-restart".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    config_maps(cp.client())
        .create(&PostParams::default(), &marker)
        .await
        .unwrap();

    cp.stop_apiserver().await;
    assert!(
        config_maps(cp.client())
            .get("survives-restart")
            .await
            .is_err()
    );
    cp.start_apiserver().await;
    assert!(
        config_maps(cp.client())
            .get("survives-restart")
            .await
            .is_ok()
    );

    let proxy = testkit::Proxy::start(cp.addr()).await.unwrap();
    let via = cp.kubeconfig_through(&proxy);
    let kc = kube::config::Kubeconfig::read_from(&via).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let proxied = || kube::Client::try_from(config.clone()).unwrap();
    assert!(config_maps(proxied()).get("survives-restart").await.is_ok());
    proxy.cut();
    assert!(
        config_maps(proxied())
            .get("survives-restart")
            .await
            .is_err()
    );
    assert!(
        config_maps(cp.client())
            .get("survives-restart")
            .await
            .is_ok()
    );
    proxy.restore();
    assert!(config_maps(proxied()).get("survives-restart").await.is_ok());

    drop(cp);
    tokio::task::spawn_blocking(move || assert_all_dead(&pids))
        .await
        .unwrap();
    testkit::wait_for(Duration::from_secs(10), || async {
        (!dir.exists()).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{} left behind: {e}", dir.display()));
}
