//! Answers a hostile or broken gateway could give (both [unverified], both
//! off by default): an error quoting the request's bearer token, and a
//! `/data` answer padded far past any sane size. They exist so that the
//! operator's redaction and answer limits are tested against the emulator.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde_json::Value;

use crate::config::Faults;
use crate::odata::{JSON_CONTENT_TYPE, ODataError, SECURITY_EXCEPTION};

/// One static chunk of padding, sent again and again.
static SPACES: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// Most bytes of an error answer read back to add the echo.
const ERROR_BODY_LIMIT: usize = 1 << 20;

/// The request's `Authorization` value, kept only while the echo is on.
pub fn authorization(faults: &Faults, headers: &HeaderMap) -> Option<String> {
    if !faults.echo_token_in_errors {
        return None;
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `echoTokenInErrors`: an error answer whose inner messages (where D365
/// puts the useful text) end with the
/// `Authorization` header; an error without an OData body gets one.
pub async fn echo_token(response: Response, authorization: &str) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let echo = format!(" (gateway trace: request header Authorization: {authorization})");
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.get("error").is_some() => {
            let error = &mut v["error"];
            for path in [
                "/innererror/message",
                "/innererror/internalexception/message",
            ] {
                if let Some(Value::String(m)) = error.pointer_mut(path) {
                    m.push_str(&echo);
                }
            }
            v
        }
        // Web API's own `{"Message": …}` (an unmatched route) keeps its shape.
        Ok(mut v) if v.get("Message").is_some_and(Value::is_string) => {
            if let Some(Value::String(m)) = v.get_mut("Message") {
                m.push_str(&echo);
            }
            return Response::from_parts(
                without_length(parts),
                Body::from(serde_json::to_vec(&v).unwrap_or_default()),
            );
        }
        _ => ODataError::new(
            status.as_u16(),
            format!("Request refused.{echo}"),
            SECURITY_EXCEPTION,
        )
        .body(),
    };
    let mut parts = without_length(parts);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

/// Answer parts whose body is about to change length.
fn without_length(mut parts: axum::http::response::Parts) -> axum::http::response::Parts {
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
}

/// `answerPaddingBytes`: a successful JSON answer with `padding` spaces
/// after its opening `{` (before it if there is none), streamed chunk by
/// chunk without `Content-Length`.
pub async fn pad(response: Response, padding: u64) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if padding == 0 || response.status() != 200 || !json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // The emulator's own answer: already in memory, so bounded.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let at = usize::from(bytes.first() == Some(&b'{'));
    let (head, tail) = (bytes.slice(..at), bytes.slice(at..));
    let chunk = SPACES.len() as u64;
    let rest = (padding % chunk) as usize;
    let spaces = (0..padding / chunk)
        .map(|_| Bytes::from_static(&SPACES))
        .chain((rest > 0).then(|| Bytes::from_static(&SPACES[..rest])));
    let chunks = std::iter::once(head)
        .chain(spaces)
        .chain(std::iter::once(tail))
        .map(Ok::<_, Infallible>);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)))
}
