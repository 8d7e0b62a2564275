//! A scripted OData server for answers the emulator does not give: a 401
//! that persists after a refresh, an ETag only in the header, a 429
//! without `Retry-After`, a redirecting token endpoint, `$batch` answers
//! with wrong Content-IDs; it also records the headers the client sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use sales_order_operator::d365::{
    BatchSettings, ConnectionSettings, D365Client, DEFAULT_INSECURE_HOSTS, Destinations,
    NoopObserver,
};
use secrecy::SecretString;
use serde_json::json;

#[derive(Clone, Copy)]
pub enum Mode {
    /// Every `/data` call answers 401, whatever the token.
    Always401,
    /// GET answers an entity without `@odata.etag` but with an ETag header.
    HeaderEtagOnly,
    /// Every `/data` call answers 429 without `Retry-After`.
    ThrottleNoRetryAfter,
    /// Every call, the token endpoint's too, answers 302 to [`ELSEWHERE`].
    Redirect,
    /// `$batch` answers one part per (Content-ID, status), in this order;
    /// a 2xx part carries the ETag `W/"part-<i>"` (`i` from 1).
    Batch(&'static [(Option<&'static str>, u16)]),
}

/// Where [`Mode::Redirect`] points: with a query a message must not quote.
pub const ELSEWHERE: &str = "https://login.elsewhere.example/authorize?client_secret=stub-secret";

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

    /// A client of this stub (its own token authority), PATCHes through
    /// `$batch` when `batch` is given.
    pub fn client(&self, batch: Option<BatchSettings>) -> D365Client {
        let url = url::Url::parse(&self.url).unwrap();
        let mut s = ConnectionSettings::new(
            url.clone(),
            url,
            "tenant",
            "client",
            SecretString::from("stub-secret"),
        );
        s.destinations = Destinations::parse("127.0.0.1", DEFAULT_INSECURE_HOSTS).unwrap();
        s.batch = batch;
        D365Client::new(s, Arc::new(NoopObserver)).unwrap()
    }
}

fn redirect() -> Response {
    (StatusCode::FOUND, [(header::LOCATION, ELSEWHERE)]).into_response()
}

/// A multipart `$batch` answer with the parts `parts` describes.
fn batch_answer(parts: &[(Option<&str>, u16)]) -> Response {
    let mut body = String::new();
    for (i, (id, status)) in parts.iter().enumerate() {
        body.push_str("--b\r\nContent-Type: application/http\r\n");
        if let Some(id) = id {
            body.push_str(&format!("Content-ID: {id}\r\n"));
        }
        body.push_str(&format!("\r\nHTTP/1.1 {status} X\r\n"));
        if (200..300).contains(status) {
            body.push_str(&format!("ETag: W/\"part-{}\"\r\n", i + 1));
        }
        body.push_str("\r\n\r\n");
    }
    body.push_str("--b--\r\n");
    (
        [(header::CONTENT_TYPE, "multipart/mixed; boundary=b")],
        body,
    )
        .into_response()
}

async fn token(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    if let Mode::Redirect = shared.mode {
        return redirect();
    }
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
        Mode::Redirect => redirect(),
        Mode::Batch(parts) => batch_answer(parts),
        Mode::ThrottleNoRetryAfter => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {"code": "", "message": "Too many requests."}})),
        )
            .into_response(),
    }
}
