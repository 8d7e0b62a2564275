//! Where the control-plane binaries come from.
//!
//! `KUBEBUILDER_ASSETS` wins when it names a folder with both binaries (what
//! setup-envtest and CI caches produce); otherwise `hack/envtest/build.sh`
//! builds them once from the Go module proxy into the user cache and prints
//! the folder. The script is idempotent, so calling it from every test binary
//! costs a few milliseconds once the cache is warm.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The folder holding `etcd`, `kube-apiserver` and (usually) `kubectl`.
pub(crate) fn locate() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from) {
        if has_binaries(&dir) {
            return Ok(dir);
        }
        eprintln!(
            "testkit: KUBEBUILDER_ASSETS={} lacks etcd or kube-apiserver; building them",
            dir.display()
        );
    }
    build()
}

fn has_binaries(dir: &Path) -> bool {
    ["etcd", "kube-apiserver"]
        .iter()
        .all(|b| dir.join(b).is_file())
}

/// The repository root: testkit lives in `<root>/testkit`.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits inside the repository")
        .to_path_buf()
}

fn build() -> Result<PathBuf> {
    let script = repo_root().join("hack/envtest/build.sh");
    // stderr is inherited: a cold build takes minutes, its progress should show.
    let out = Command::new("bash")
        .arg(&script)
        .env_remove("KUBEBUILDER_ASSETS")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    if !has_binaries(&dir) {
        bail!(
            "{} printed {:?}, which lacks the binaries",
            script.display(),
            dir
        );
    }
    Ok(dir)
}

/// kubectl from the assets folder (matches the server version), else PATH.
pub(crate) fn kubectl(assets: &Path) -> PathBuf {
    let cached = assets.join("kubectl");
    if cached.is_file() {
        cached
    } else {
        PathBuf::from("kubectl")
    }
}
