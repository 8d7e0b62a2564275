//! The HTTP server: routes, the `/data` guard (auth, throttling, injected
//! faults) and the request recorder.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};

use crate::handlers::{self, Touched};
use crate::journal::RequestRecord;
use crate::odata::ODataError;
use crate::state::State;
use crate::throttle::THROTTLE_MESSAGE;

/// All routes: D365's (recorded, `/data` guarded) and the admin API.
pub fn router(state: Arc<State>) -> Router {
    let d365 = Router::new()
        .route("/data", any(handlers::data))
        .route("/data/", any(handlers::data))
        .route("/data/{*rest}", any(handlers::data))
        .route("/{tenant}/oauth2/v2.0/token", post(crate::auth::token))
        .layer(middleware::from_fn_with_state(state.clone(), guard));
    d365.merge(crate::admin::router()).with_state(state)
}

/// Records every D365 request; for `/data` checks the bearer [doc], then
/// service protection [doc] (resource-based first, then the capacity model, then the request
/// limits), then injected latency and errors; holds the
/// answer back on an injected hang (after the request took effect, so a
/// timed-out PATCH may still have been applied, as with a real server);
/// last, the hostile answers (`echoTokenInErrors`, `answerPaddingBytes`).
async fn guard(AxState(state): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let if_match = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_data = path == "/data" || path.starts_with("/data/");
    let is_get = method == "GET";
    let faults = state.faults();
    let authorization = is_data
        .then(|| crate::hostile::authorization(&faults, req.headers()))
        .flatten();
    let mut slot = None;
    let response = if !is_data {
        next.run(req).await
    } else if let Some(status) = faults.redirect_status() {
        redirect(status, &faults.redirect_to, req.uri())
    } else if state.tokens.check(req.headers()).is_err() {
        unauthorized()
    } else if let Some(secs) = faults.throttle_retry_after {
        throttled(secs)
    } else {
        let loaded = match &faults.capacity {
            Some(model) => state.throttle.load(model).map(|(s, d)| (Some(s), d)),
            None => Ok((None, Duration::ZERO)),
        };
        match loaded.and_then(|l| {
            let s = state
                .throttle
                .admit(faults.max_rps, faults.max_concurrent)?;
            Ok((l, s))
        }) {
            Err(secs) => throttled(secs),
            Ok(((load, modelled), s)) => {
                slot = Some((s, load));
                let mut delay = faults.latency_ms + state.rng.upto(faults.latency_jitter_ms);
                delay += u64::try_from(modelled.as_millis()).unwrap_or(u64::MAX);
                if !state.warm.swap(true, Ordering::Relaxed) {
                    delay += faults.cold_start_ms;
                }
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if state.rng.chance(faults.error_rate) {
                    injected_error(faults.error_status())
                } else {
                    next.run(req).await
                }
            }
        }
    };
    // Refused before the handler (401, 429, injected error): still name the order.
    let touched = response.extensions().get::<Touched>().cloned().or_else(|| {
        let raw = path.strip_prefix("/data/")?;
        match crate::keys::parse_resource(raw).ok()? {
            crate::keys::Resource::Entity(area, number) => Some(Touched {
                area: area.to_lowercase(),
                number,
            }),
            _ => None,
        }
    });
    let rows = response
        .extensions()
        .get::<crate::handlers::Answered>()
        .map(|a| a.0.clone())
        .unwrap_or_default();
    state.journal.request(RequestRecord {
        rows,
        method,
        path,
        data_area_id: touched.as_ref().map(|t| t.area.clone()),
        sales_order_number: touched.map(|t| t.number),
        status: response.status().as_u16(),
        if_match,
    });
    if is_data && state.rng.chance(faults.hang_rate) {
        tokio::time::sleep(Duration::from_millis(faults.hang_ms)).await;
    }
    drop(slot);
    let response = match authorization {
        Some(value) => crate::hostile::echo_token(response, &value).await,
        None => response,
    };
    match faults.answer_padding_bytes {
        Some(padding) if is_data && is_get => crate::hostile::pad(response, padding).await,
        _ => response,
    }
}

/// The `redirectStatus` fault: a 3xx whose `Location` is `base` + the
/// request's path and query, with a short text body as proxies send.
fn redirect(status: u16, base: &str, uri: &axum::http::Uri) -> Response {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("{}{target}", base.trim_end_matches('/'));
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    let mut r = (code, format!("Moved to {location}")).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// 401 with an empty body and a Bearer challenge, as Entra-protected APIs answer.
fn unauthorized() -> Response {
    let mut r = StatusCode::UNAUTHORIZED.into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// 429 + `Retry-After` seconds [doc].
fn throttled(secs: u64) -> Response {
    let mut r = ODataError::new(
        429,
        THROTTLE_MESSAGE,
        "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataThrottlingException",
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

fn injected_error(status: u16) -> Response {
    let msg = if status == 503 {
        "The service is temporarily unavailable. (injected fault)"
    } else {
        "An unexpected error occurred on the server. (injected fault)"
    };
    ODataError::new(status, msg, "System.Exception").into_response()
}
