//! A real Kubernetes control plane for tests: one etcd + kube-apiserver per
//! test binary, started lazily on loopback, shared by all its tests (each in
//! its own namespace), and killed when the binary exits — even after panics.
//!
//! ```no_run
//! # async fn t() {
//! let cp = testkit::control_plane().await;
//! let ns = cp.namespace("smoke").await;
//! let client = cp.client();
//! let out = cp.kubectl(&["get", "ns", &ns]);
//! assert!(out.status.success());
//! # }
//! ```
//!
//! Binaries: `KUBEBUILDER_ASSETS` when it holds `etcd` and `kube-apiserver`,
//! else `hack/envtest/build.sh` builds them once into the user cache.
//!
//! # Why not the `envtest` crate
//! kube-rs's `envtest` (0.3) wraps controller-runtime's Go envtest through
//! rust2go. It did not fit: it builds a Go shared library via cgo and
//! bindgen at `cargo build` time (needs clang, absent here and on a fresh CI
//! machine, plus a second large Go build inside every cold cargo build); it
//! depends on kube 4 / k8s-openapi 0.28, so its `kube::Client` is not our
//! kube 5 client and both versions would compile; and its process lifetime
//! is tied to an explicit async `destroy()`, which a shared `static` never
//! reaches. What envtest does is small — generate certs, pick ports, start
//! two processes with known flags, poll `/readyz` — so this crate does that
//! directly with the same flags, and adds PDEATHSIG/atexit cleanup.

mod assets;
mod boot;
mod child;
mod kubeconfig;
mod pki;
mod plane;
// The one module that talks to the kernel directly (PDEATHSIG, atexit,
// signals): the workspace denies unsafe code everywhere else.
#[allow(unsafe_code)]
mod process;
mod proxy;
mod wait;

use std::sync::OnceLock;

pub use child::{Guarded, spawn_guarded};
pub use plane::ControlPlane;
pub use process::terminate;
pub use proxy::Proxy;
pub use wait::{TimedOut, wait_for};

static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The shared control plane, started on first use (blocking). A failed
/// start is remembered, so every later test fails at once with its cause
/// instead of waiting for its own timeout.
pub fn control_plane_blocking() -> &'static ControlPlane {
    let plane = PLANE.get_or_init(|| boot::start().map_err(|e| format!("{e:#}")));
    match plane {
        Ok(plane) => plane,
        Err(e) => panic!("testkit: control plane failed to start: {e}"),
    }
}

/// The shared control plane, started on first use. Start-up blocks a
/// blocking-pool thread, not the test's runtime.
pub async fn control_plane() -> &'static ControlPlane {
    match PLANE.get() {
        Some(_) => control_plane_blocking(),
        None => tokio::task::spawn_blocking(control_plane_blocking)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
    }
}

/// A control plane of the calling test's own, for tests that stop and
/// start kube-apiserver (the shared one must stay up for everyone else).
/// Its processes and files go when it is dropped.
pub async fn private_control_plane() -> ControlPlane {
    tokio::task::spawn_blocking(boot::start)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        .unwrap_or_else(|e| panic!("testkit: private control plane failed to start: {e:#}"))
}
