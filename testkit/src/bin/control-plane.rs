//! Runs the test control plane (etcd + kube-apiserver on loopback) until
//! SIGINT/SIGTERM: the local cluster of `make demo` and of manual poking.
//! Usage: `control-plane [KUBECONFIG_OUT]` — copies the admin kubeconfig
//! there and prints `control plane ready: KUBECONFIG=<path>` when ready.

fn main() -> anyhow::Result<()> {
    let plane = testkit::control_plane_blocking();
    let out = std::env::args().nth(1);
    let path = match out {
        Some(p) => {
            std::fs::copy(plane.kubeconfig(), &p)?;
            std::path::PathBuf::from(p)
        }
        None => plane.kubeconfig().to_path_buf(),
    };
    println!(
        "control plane ready: KUBECONFIG={} ({} at {})",
        path.display(),
        plane.version(),
        plane.url()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    eprintln!("control plane: stopping");
    Ok(())
}
