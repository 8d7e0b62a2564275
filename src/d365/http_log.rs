//! The log line of each exchange: the same fields whichever way it was
//! sent (method, key, status, etag_sent, etag_received, attempt,
//! duration_ms; see docs/operations.md "Logs"), and its trace span with
//! the same attributes (docs/operations.md "Traces").

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
    if label.kind == RequestKind::Token {
        let endpoint = label.target;
        tracing::debug!(endpoint = %endpoint, status, duration_ms, "token request");
        return;
    }
    match result {
        Ok(reply) => answered(
            label,
            reply.status,
            reply.etag_received().as_ref(),
            duration_ms,
        ),
        Err(f) => failed(label, f, duration_ms),
    }
}

/// The line of an opened (streamed) exchange, with the same fields as
/// [`log`]'s: the answer's ETag is its header's, if any.
pub(super) fn log_opened(label: &Label<'_>, result: &Result<Opened, Failure>, duration: Duration) {
    let duration_ms = duration.as_millis() as u64;
    let (status, headers) = match result {
        Err(f) => return failed(label, f, duration_ms),
        Ok(Opened::Stream(response)) => (response.status().as_u16(), response.headers()),
        Ok(Opened::Refused(reply)) => (reply.status, &reply.headers),
    };
    let etag = ETag::from_response(None, headers);
    answered(label, status, etag.as_ref(), duration_ms);
}

/// The line of an answered exchange: "D365 request", or "… refused" for
/// an answer outside 2xx.
fn answered(label: &Label<'_>, status: u16, etag: Option<&ETag>, duration_ms: u64) {
    let Label {
        method,
        target,
        etag_sent,
        attempt,
        ..
    } = *label;
    let etag_received = etag.map(ETag::as_str).unwrap_or("");
    if (200..300).contains(&status) {
        tracing::info!(method, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request");
    } else {
        tracing::info!(method, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request refused");
    }
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

/// The span of one D365 exchange, a child of the current (reconcile) span;
/// none with traces off, or for the token endpoint, which is Entra's. The status and the
/// answer's ETag are recorded when it comes ([`record`]). Never the
/// request's headers: the bearer token stays out of traces too.
pub(super) fn request_span(label: &Label<'_>) -> tracing::Span {
    if label.kind == RequestKind::Token || !crate::telemetry::traces_on() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "d365 request",
        otel.name = %format_args!("D365 {}", label.method),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        method = label.method,
        key = %label.target,
        etag_sent = label.etag_sent,
        attempt = label.attempt,
        status = tracing::field::Empty,
        etag_received = tracing::field::Empty,
        error = tracing::field::Empty,
    )
}

/// Records the outcome of a whole-answer exchange on its span.
pub(super) fn record(span: &tracing::Span, status: Option<u16>, result: &Result<Reply, Failure>) {
    match result {
        Ok(reply) => {
            let etag = reply.etag_received();
            record_answer(span, status, etag.as_ref());
        }
        Err(f) => record_failure(span, status, f),
    }
}

/// Records the outcome of an opened (streamed) exchange on its span.
pub(super) fn record_opened(
    span: &tracing::Span,
    status: Option<u16>,
    result: &Result<Opened, Failure>,
) {
    let headers = match result {
        Err(f) => return record_failure(span, status, f),
        Ok(Opened::Stream(response)) => response.headers(),
        Ok(Opened::Refused(reply)) => &reply.headers,
    };
    record_answer(span, status, ETag::from_response(None, headers).as_ref());
}

fn record_answer(span: &tracing::Span, status: Option<u16>, etag: Option<&ETag>) {
    span.record("status", status);
    span.record("etag_received", etag.map(ETag::as_str).unwrap_or(""));
    if status.is_some_and(|s| s >= 400) {
        span.record("otel.status_code", "ERROR");
    }
}

fn record_failure(span: &tracing::Span, status: Option<u16>, failure: &Failure) {
    span.record("status", status);
    span.record("otel.status_code", "ERROR");
    span.record("error", tracing::field::display(&failure.why));
}
