//! `$batch` (placeholder until the multipart implementation lands).
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::odata::ODataError;
use crate::state::State;

pub fn handle(_state: &State, _base: &str, _headers: &HeaderMap, _body: &[u8]) -> Response {
    ODataError::new(501, "not yet", crate::odata::PROTOCOL_EXCEPTION).into_response()
}
