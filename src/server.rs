//! `/metrics`, `/healthz`, `/readyz` on one small HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Flags that must all be true for `/readyz` (one per watched namespace).
pub type ReadyFlags = Arc<Vec<Arc<AtomicBool>>>;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Router, routing::get};

use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: ReadyFlags,
}

/// The router, separate from binding so tests can serve it anywhere.
pub fn router(metrics: Arc<Metrics>, ready: ReadyFlags) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready })
}

/// Serves until the process ends.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: ReadyFlags,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics /healthz /readyz");
    axum::serve(listener, router(metrics, ready)).await
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Ready once the watches have synced (and, with leader election, the
/// replica knows whether it leads or stands by).
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.iter().all(|r| r.load(Ordering::SeqCst)) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watches not synced")
    }
}
