//! The log line of each exchange: the same fields whichever way it was
//! sent (method, key, status, etag_sent, etag_received, attempt,
//! duration_ms; see docs/operations.md "Logs").

use std::time::Duration;

use super::{ETag, Failure, Label, Opened, Reply, RequestKind};

/// One line per exchange. ETags and order keys are logged; the request's
/// headers (the bearer token) never are.
pub(super) fn log(
    label: &Label<'_>,
    status: Option<u16>,
    result: &Result<Reply, Failure>,
    duration: Duration,
) {
    let duration_ms = duration.as_millis() as u64;
    let Label {
        method,
        target,
        etag_sent,
        attempt,
        ..
    } = *label;
    if label.kind == RequestKind::Token {
        tracing::debug!(endpoint = %target, status, duration_ms, "token request");
        return;
    }
    let reply = match result {
        Ok(reply) => reply,
        Err(f) => return failed(label, f, duration_ms),
    };
    let status = reply.status;
    let etag_received = reply.etag_received();
    let etag_received = etag_received.as_ref().map(ETag::as_str).unwrap_or("");
    if reply.is_success() {
        tracing::info!(method, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request");
    } else {
        tracing::info!(method, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request refused");
    }
}

/// The line of an opened (streamed) exchange, with the same fields as
/// [`log`]'s: the answer's ETag is its header's, if any.
pub(super) fn log_opened(
    label: &Label<'_>,
    status: Option<u16>,
    result: &Result<Opened, Failure>,
    duration: Duration,
) {
    let duration_ms = duration.as_millis() as u64;
    let Label {
        method,
        target,
        etag_sent,
        attempt,
        ..
    } = *label;
    let headers = match result {
        Err(f) => return failed(label, f, duration_ms),
        Ok(Opened::Stream(response)) => response.headers(),
        Ok(Opened::Refused(reply)) => &reply.headers,
    };
    let etag_received = ETag::from_response(None, headers);
    let etag_received = etag_received.as_ref().map(ETag::as_str).unwrap_or("");
    tracing::info!(method, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request");
}

/// The line of an exchange that got no answer (timeout, connection refused).
fn failed(label: &Label<'_>, failure: &Failure, duration_ms: u64) {
    let Label {
        method,
        target,
        etag_sent,
        attempt,
        ..
    } = *label;
    tracing::warn!(method, key = %target, etag_sent, attempt, duration_ms, error = %failure.why, "D365 request failed");
}
