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
    /// `/data` answers 200 with an endless body ([`HUGE`] bytes), declaring
    /// its length in `Content-Length` when `declared`.
    Huge { declared: bool },
    /// The token endpoint answers a 200 with a [`HUGE`] body.
    HugeToken,
    /// The token answer's `expires_in` is this JSON value.
    ExpiresIn(&'static str),
    /// `/data` answers 403 quoting the request's `Authorization` header
    /// and the client secret, as a careless gateway might.
    EchoCredentials403,
    /// `$batch` answers one part (Content-ID 1) that is such a 403.
    EchoCredentialsBatch,
    /// A collection page of one row whose `@odata.nextLink` names this
    /// stub as `localhost`: the same server, but another origin.
    NextLinkElsewhere,
}

/// The length of a [`Mode::Huge`] answer: 1 GiB, generated chunk by chunk.
pub const HUGE: u64 = 1 << 30;

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
    /// Bytes of huge bodies handed to the server so far.
    served: Arc<AtomicU64>,
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
            served: Arc::new(AtomicU64::new(0)),
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

    /// Bytes of huge bodies produced so far (a refused answer stops early).
    pub fn served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
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

/// [`HUGE`] bytes of `x` in 64 KiB chunks sharing one buffer, so the
/// stub itself allocates almost nothing; `served` counts what was taken.
fn huge_body(served: Arc<AtomicU64>, declared: bool) -> Response {
    const CHUNK: usize = 64 << 10;
    let chunk = axum::body::Bytes::from(vec![b'x'; CHUNK]);
    let chunks = futures::stream::iter((0..HUGE / CHUNK as u64).map(move |_| {
        served.fetch_add(CHUNK as u64, Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    let mut response = axum::body::Body::from_stream(chunks).into_response();
    if declared {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HUGE.into());
    }
    response
}

async fn token(State(shared): State<Arc<Shared>>) -> Response {
    let n = shared.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    let expires_in = match shared.mode {
        Mode::Redirect => return redirect(),
        Mode::HugeToken => return huge_body(shared.served.clone(), false),
        Mode::ExpiresIn(raw) => serde_json::from_str(raw).unwrap(),
        _ => json!("3599"),
    };
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "access_token": format!("stub-token-{n}"),
    }))
    .into_response()
}

/// A 403 error body quoting the `Authorization` header and the secret.
fn echo_credentials(headers: &HeaderMap) -> serde_json::Value {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let text = format!("Access denied for {authorization} (client_secret=stub-secret)");
    json!({"error": {"code": "", "message": text}})
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
        Mode::Huge { declared } => huge_body(shared.served.clone(), declared),
        Mode::HugeToken | Mode::ExpiresIn(_) => {
            axum::Json(json!({"SalesOrderStatus": "Backorder", "@odata.etag": "W/\"1\""}))
                .into_response()
        }
        Mode::EchoCredentials403 => (
            StatusCode::FORBIDDEN,
            axum::Json(echo_credentials(request.headers())),
        )
            .into_response(),
        Mode::EchoCredentialsBatch => {
            let part = echo_credentials(request.headers());
            let body = format!(
                "--b\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{part}\r\n--b--\r\n"
            );
            (
                [(header::CONTENT_TYPE, "multipart/mixed; boundary=b")],
                body,
            )
                .into_response()
        }
        Mode::Batch(parts) => batch_answer(parts),
        Mode::NextLinkElsewhere => {
            let port = request.uri().port_u16().or_else(|| {
                let host = request.headers().get(header::HOST)?.to_str().ok()?;
                host.rsplit(':').next()?.parse().ok()
            });
            let link = format!(
                "http://localhost:{}/data/SalesOrderHeadersV2?$skiptoken=1",
                port.unwrap_or(80)
            );
            let row = json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-1"});
            axum::Json(json!({"value": [row], "@odata.nextLink": link})).into_response()
        }
        Mode::ThrottleNoRetryAfter => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error": {"code": "", "message": "Too many requests."}})),
        )
            .into_response(),
    }
}
