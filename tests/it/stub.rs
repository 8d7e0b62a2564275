//! A scripted OData server for answers the emulator does not give: a 401
//! that persists after a refresh, an ETag only in the header, a 429
//! without `Retry-After`; it also records the headers the client sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::json;

#[derive(Clone, Copy)]
pub enum Mode {
    /// Every `/data` call answers 401, whatever the token.
    Always401,
    /// GET answers an entity without `@odata.etag` but with an ETag header.
    HeaderEtagOnly,
    /// Every `/data` call answers 429 without `Retry-After`.
    ThrottleNoRetryAfter,
}

/// One `/data` request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
}

struct Shared {
    mode: Mode,
    tokens: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

pub struct Stub {
    pub url: String,
    shared: Arc<Shared>,
}

impl Stub {
    pub async fn start(mode: Mode) -> Stub {
        let shared = Arc::new(Shared {
            mode,
            tokens: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/data/{*rest}", any(data))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Stub { url, shared }
    }

    pub fn token_requests(&self) -> u64 {
        self.shared.tokens.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn token(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": "3599",
        "access_token": format!("stub-token-{n}"),
    }))
    .into_response()
}

async fn data(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers: request.headers().clone(),
    });
    match shared.mode {
        Mode::Always401 => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response(),
        Mode::HeaderEtagOnly => (
            [(header::ETAG, "W/\"from-header\"")],
            axum::Json(json!({"SalesOrderStatus": "Backorder"})),
        )
            .into_response(),
        Mode::ThrottleNoRetryAfter => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {"code": "", "message": "Too many requests."}})),
        )
            .into_response(),
    }
}
