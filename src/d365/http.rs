//! The lowest layer: one HTTP exchange, observed and logged.
//!
//! Token requests and OData requests both go through
//! [`Transport::send_once`], so every attempt (including the resend after a
//! 401) is exactly one [`RequestEvent`] and one log line, whoever sent it.
//! Retries, tokens and status classification live in the layers above.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;

use tracing::Instrument as _;

use self::lines::{log, log_opened, record, record_opened, request_span};
use super::entity::json_object;
use super::settings::MAX_SMALL_ANSWER_BYTES;
use super::{
    D365Error, ETag, Fence, Fenced, OperationEvent, RequestEvent, RequestKind, RequestObserver,
};

/// The HTTP client, the per-request timeout, the metrics hook and the write
/// fence of one connection. Cheap to clone: the token cache holds a clone.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    observer: Arc<dyn RequestObserver>,
    timeout: Duration,
    fence: Fence,
    /// Most bytes a 2xx answer from D365 may have (see [`MAX_SMALL_ANSWER_BYTES`]
    /// for the others).
    max_answer_bytes: usize,
}

/// What an exchange is about, for its event and its log line. `target` is
/// the order key, `$batch` or the token endpoint: never a token or secret.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label<'a> {
    pub method: &'static str,
    pub kind: RequestKind,
    pub target: &'a str,
    /// The `If-Match` sent, or `""`.
    pub etag_sent: &'a str,
    /// 1, or 2 for the resend after a 401.
    pub attempt: u32,
}

impl Label<'_> {
    /// Anything but a read of D365's data (a PATCH, a `$batch`) changes it.
    fn is_write(&self) -> bool {
        self.kind != RequestKind::Token && self.method != "GET"
    }
}

/// A complete answer, whatever its status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body parsed, for a 2xx whose body is a JSON object; error
    /// bodies are classified from `body`.
    pub json: Option<Map<String, Value>>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn is_success(&self) -> bool {
        StatusCode::from_u16(self.status).is_ok_and(|s| s.is_success())
    }

    /// The version the answer names: body first, then the `ETag` header.
    fn etag_received(&self) -> Option<ETag> {
        ETag::from_response(self.json.as_ref(), &self.headers)
    }
}

/// What [`Transport::open`] got: a 2xx to stream, or an error answer read
/// whole.
#[derive(Debug)]
pub(crate) enum Opened {
    Stream(reqwest::Response),
    Refused(Box<Reply>),
}

/// No complete answer arrived: the status if the head did, and why.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: Option<u16>,
    /// The error in words (see [`describe`]), for messages and logs.
    pub why: String,
    pub error: Cause,
}

/// An answer longer than its limit: refused, not buffered.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("answer too large (more than {limit} bytes)")]
pub struct AnswerTooLarge {
    pub limit: usize,
}

/// What stopped an exchange.
#[derive(Debug)]
pub(crate) enum Cause {
    Transport(reqwest::Error),
    /// The answer was longer than the limit; the rest was never read.
    TooLarge(AnswerTooLarge),
    /// Never sent: the fence refused a write.
    Fenced(Fenced),
}

impl Cause {
    /// The failure, with the cause in words for messages and logs.
    fn into_failure(self, status: Option<u16>, timeout: Duration) -> Failure {
        let why = match &self {
            Self::Transport(error) => describe(error, timeout),
            Self::TooLarge(error) => error.to_string(),
            Self::Fenced(refused) => refused.to_string(),
        };
        Failure {
            status,
            why,
            error: self,
        }
    }
}

impl Failure {
    /// `Unavailable` with the message `describe` makes of the failure in
    /// words, keeping the transport error as its source; `Fenced` for a
    /// write the fence refused.
    pub(crate) fn into_error(self, describe: impl FnOnce(&str) -> String) -> D365Error {
        match self.error {
            Cause::Transport(error) => D365Error::Unavailable {
                status: self.status,
                message: describe(&self.why),
                source: Some(Arc::new(error)),
            },
            Cause::TooLarge(error) => D365Error::Unavailable {
                status: self.status,
                message: describe(&self.why),
                source: Some(Arc::new(error)),
            },
            Cause::Fenced(refused) => D365Error::Fenced(refused),
        }
    }
}

impl Transport {
    pub(crate) fn new(
        http: reqwest::Client,
        observer: Arc<dyn RequestObserver>,
        timeout: Duration,
        max_answer_bytes: usize,
    ) -> Self {
        Self {
            http,
            observer,
            timeout,
            fence: Fence::open(),
            max_answer_bytes,
        }
    }

    /// Reports one operation of a `$batch` answer to the observer.
    pub(crate) fn observe_operation(&self, event: &OperationEvent) {
        self.observer.observe_operation(event);
    }

    /// Writes go out only while `fence` allows them.
    pub(crate) fn fenced_by(self, fence: Fence) -> Self {
        Self { fence, ..self }
    }

    /// A request with the connection's timeout; the caller adds headers.
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url).timeout(self.timeout)
    }

    /// Sends `request` once and reads the whole answer. A D365 caller holds
    /// its limiter permit around this call (the token endpoint is Entra's,
    /// not D365's, and needs none), so the limiter wait is not part of the
    /// measured duration. Reports the exchange to the observer and logs it.
    /// A write is checked against the fence last, after the caller's
    /// limiter wait, right before it leaves; a refused one is logged but
    /// neither sent nor observed.
    pub(crate) async fn send_once(
        &self,
        request: RequestBuilder,
        label: &Label<'_>,
    ) -> Result<Reply, Failure> {
        self.check_fence(label)?;
        let span = request_span(label);
        let started = Instant::now();
        let result = receive(request, self.timeout, self.limit(label.kind))
            .instrument(span.clone())
            .await;
        let duration = started.elapsed();
        let status = match &result {
            Ok(reply) => Some(reply.status),
            Err(failure) => failure.status,
        };
        record(&span, status, &result);
        self.observer.observe(&RequestEvent {
            method: label.method,
            kind: label.kind,
            status,
            duration,
        });
        log(label, status, &result, duration);
        result
    }

    /// Sends `request` once and hands back a 2xx answer unread, for the
    /// caller to stream (`$metadata`); any other answer is read whole,
    /// within the small-answer limit, for classification. Observed and
    /// logged like [`Transport::send_once`], the duration up to the head.
    pub(crate) async fn open(
        &self,
        request: RequestBuilder,
        label: &Label<'_>,
    ) -> Result<Opened, Failure> {
        let span = request_span(label);
        let started = Instant::now();
        let result = match request.send().instrument(span.clone()).await {
            Err(e) => Err(Cause::Transport(e).into_failure(None, self.timeout)),
            Ok(response) if response.status().is_success() => Ok(Opened::Stream(response)),
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                read_bounded(response, MAX_SMALL_ANSWER_BYTES)
                    .await
                    .map(|body| {
                        Opened::Refused(Box::new(Reply {
                            status,
                            headers,
                            json: None,
                            body,
                        }))
                    })
                    .map_err(|cause| cause.into_failure(Some(status), self.timeout))
            }
        };
        let status = match &result {
            Ok(Opened::Stream(response)) => Some(response.status().as_u16()),
            Ok(Opened::Refused(reply)) => Some(reply.status),
            Err(failure) => failure.status,
        };
        let duration = started.elapsed();
        record_opened(&span, status, &result);
        self.observer.observe(&RequestEvent {
            method: label.method,
            kind: label.kind,
            status,
            duration,
        });
        log_opened(label, &result, duration);
        result
    }

    /// The size limit of an answer by its status: a token answer, and any
    /// error answer, is small whatever the data limit.
    fn limit(&self, kind: RequestKind) -> impl Fn(u16) -> usize + use<> {
        let data = self.max_answer_bytes;
        let token = kind == RequestKind::Token;
        move |status| {
            let success = (200..300).contains(&status);
            if success && !token {
                data
            } else {
                MAX_SMALL_ANSWER_BYTES.min(data)
            }
        }
    }

    /// A write the fence refuses fails here, never sent.
    fn check_fence(&self, label: &Label<'_>) -> Result<(), Failure> {
        if !label.is_write() {
            return Ok(());
        }
        self.fence.check().map_err(|refused| {
            tracing::warn!(method = label.method, key = %label.target, error = %refused, "D365 write not sent");
            Cause::Fenced(refused).into_failure(None, self.timeout)
        })
    }
}

async fn receive(
    request: RequestBuilder,
    timeout: Duration,
    limit: impl Fn(u16) -> usize,
) -> Result<Reply, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| Cause::Transport(e).into_failure(None, timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_bounded(response, limit(status))
        .await
        .map_err(|cause| cause.into_failure(Some(status), timeout))?;
    let mut reply = Reply {
        status,
        headers,
        json: None,
        body,
    };
    if reply.is_success() {
        reply.json = json_object(&reply.body);
    }
    Ok(reply)
}

/// The body, chunk by chunk, refused as soon as it would pass `limit`
/// (at once when `Content-Length` says so): a hostile or broken server
/// cannot make the operator buffer more than `limit` bytes. Dropping the
/// response closes the connection, so the rest is never read.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Cause> {
    let too_large = || Cause::TooLarge(AnswerTooLarge { limit });
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = response.chunk().await.map_err(Cause::Transport)? {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport failure in words: a timeout says how long we waited, other
/// errors list their cause chain (which names the URL, never a header).
fn describe(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("no answer within {timeout:?} (timed out)");
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[path = "http_log.rs"]
mod lines;
