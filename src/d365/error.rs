//! The module's one error type, and the mapping from D365 answers to it.

use std::sync::Arc;
use std::time::Duration;

pub use super::error_body::ODataErrorDetails;
use super::error_body::{MAX_MESSAGE_CHARS, web_api_message};
use super::{ETag, Fenced, OrderKey};
use crate::text::truncate;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};

/// Wait after a 429 that carries no usable `Retry-After`: Microsoft's
/// sample waits 30 s [doc].
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Upper bound on an honoured `Retry-After`, so one absurd header cannot
/// freeze a connection for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Everything a D365 call can fail with, sorted by what the caller should
/// do next. Messages carry D365's own text (from `innererror.message` when
/// present, else `error.message`) plus the order key and ETags, never a
/// token or secret. A transport, parse or setup failure behind an error is
/// kept as its [`source`](std::error::Error::source), behind an `Arc` so
/// the error stays `Clone` (one token failure is shared by every waiter).
#[derive(Debug, Clone, thiserror::Error)]
pub enum D365Error {
    /// 409 or 412: the `If-Match` ETag is stale (D365's exact code is
    /// unverified; field reports saw 409). Re-read and re-plan.
    #[error("conflict ({status}): {message}")]
    Conflict {
        status: u16,
        sent_etag: String,
        message: String,
    },
    /// 428: the service demands `If-Match` and none was sent.
    #[error("precondition required (428): {message}")]
    PreconditionRequired { message: String },
    /// 429: the connection is paused for `retry_after` (the header's
    /// seconds, [`DEFAULT_RETRY_AFTER`] when absent).
    #[error("throttled (429), retry after {}s: {message}", retry_after.as_secs_f64())]
    Throttled {
        retry_after: Duration,
        message: String,
    },
    /// The token endpoint refused the credentials, or D365 answered 401
    /// again after one token refresh.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// 403: the app's F&O user lacks rights (e.g. on that company).
    #[error("forbidden (403): {message}")]
    Forbidden { message: String },
    /// 404 (or 410). The message says which: "no such route" when the
    /// answer is ASP.NET Web API's `{"Message": …}` (the `url` or
    /// `entitySet` is wrong, or a key was mis-encoded) [obs], "order not
    /// found" when OData answered for an order, else plain "not found".
    #[error("{message}")]
    NotFound { message: String },
    /// D365 refused the write itself; retrying the same request will not
    /// help. The rule:
    /// - 400, 422 and any other 4xx without a dedicated variant (current
    ///   releases answer business validation 400 with the Infolog) [obs];
    /// - a 500 whose error body says the write or a validation failed —
    ///   `innererror.type` contains `AxODataWriteException` or
    ///   `ValidationException`, or `innererror.message` / `error.message`
    ///   contains "write failed" or "validation" (case-insensitive) —
    ///   because older releases (and actions) report business-validation
    ///   failures as 500 [obs].
    #[error("rejected ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A 3xx, never followed: a PATCH landing elsewhere, or turned into a
    /// GET (301/302/303), would pass for written while D365 never changed.
    /// The connection's `url` (or `authorityUrl`) is not the service's own.
    #[error("redirect refused ({status}): {message}")]
    Redirected {
        status: u16,
        /// The `Location` answered, query and fragment left out.
        location: String,
        message: String,
    },
    /// Worth retrying later: other 5xx, 408, timeouts, connection errors
    /// (`status` is `None` when no answer arrived).
    #[error("unavailable{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Unavailable {
        status: Option<u16>,
        message: String,
        /// The transport failure, or the answer refused as too large.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// A 2xx answer we cannot use: unparsable body, no ETag.
    #[error("invalid response: {message}")]
    InvalidResponse {
        message: String,
        /// Why the body could not be read (JSON, multipart), if that is
        /// the reason.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// Not sent: this replica may not write (its Lease was not renewed in
    /// time, or was lost). Never an update; retried later, by the new
    /// leader if there is one.
    #[error("write not sent: {0}")]
    Fenced(#[from] Fenced),
    /// Bad settings or arguments, found before anything was sent.
    #[error("invalid configuration: {message}")]
    Config {
        message: String,
        /// The parse or build failure behind it, if any.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl D365Error {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// How long the connection is paused, for a `Throttled` error.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The HTTP status behind the error, for metrics and conditions.
    /// `Unauthorized` reports 401 even when the token endpoint said 400.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Conflict { status, .. }
            | Self::Rejected { status, .. }
            | Self::Redirected { status, .. } => Some(*status),
            Self::PreconditionRequired { .. } => Some(428),
            Self::Throttled { .. } => Some(429),
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::NotFound { .. } => Some(404),
            Self::Unavailable { status, .. } => *status,
            Self::InvalidResponse { .. } | Self::Config { .. } | Self::Fenced(_) => None,
        }
    }

    /// Whether the same request may succeed later without a human:
    /// conflicts (after a re-read), throttling, unavailability and a fenced
    /// write (once a replica holds the Lease).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. }
                | Self::Throttled { .. }
                | Self::Unavailable { .. }
                | Self::Fenced(_)
        )
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::Config {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidResponse {
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `cause` as the source of a `Config` or `InvalidResponse`
    /// error (the variants whose cause can be any error).
    pub(crate) fn caused_by(
        mut self,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        match &mut self {
            Self::Config { source, .. } | Self::InvalidResponse { source, .. } => {
                *source = Some(Arc::new(cause));
            }
            _ => debug_assert!(false, "no source slot for {self:?}"),
        }
        self
    }

    /// A 3xx answered by `who` (e.g. "D365"), which names the `Location`
    /// and the setting to check (`url`, `authorityUrl`).
    pub(crate) fn redirected(status: u16, headers: &HeaderMap, who: &str, setting: &str) -> Self {
        let location = headers
            .get(LOCATION)
            .map(|v| redacted_location(&String::from_utf8_lossy(v.as_bytes())))
            .unwrap_or_else(|| "(no Location header)".to_owned());
        let message = format!(
            "{who} answered {status} redirecting to {location}; redirects are not followed: check the connection's {setting}"
        );
        Self::Redirected {
            status,
            location,
            message,
        }
    }

    /// A 5xx (or 408) answer, or a failure without a transport error.
    pub(crate) fn unavailable(status: Option<u16>, message: impl Into<String>) -> Self {
        Self::Unavailable {
            status,
            message: message.into(),
            source: None,
        }
    }

    /// Maps a non-success OData answer to an error. Public so callers and
    /// tests can classify an answer obtained some other way; the client
    /// uses it for every non-2xx response from `/data`.
    pub fn from_odata_response(
        ctx: &ResponseContext<'_>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        if (300..=399).contains(&status) {
            let mut err = Self::redirected(status, headers, "D365", "url");
            if let Self::Redirected { message, .. } = &mut err {
                *message = ctx.describe(status, message);
            }
            return err;
        }
        let details = ODataErrorDetails::parse(body);
        let web_api = details.is_none().then(|| web_api_message(body)).flatten();
        let d365_text = details
            .as_ref()
            .and_then(ODataErrorDetails::text)
            .or(web_api.as_deref())
            .map(str::to_owned)
            .unwrap_or_else(|| fallback_text(status, body));
        let message = ctx.describe(status, &d365_text);
        match status {
            409 | 412 => Self::Conflict {
                status,
                sent_etag: ctx
                    .if_match
                    .map(|e| e.as_str().to_owned())
                    .unwrap_or_default(),
                message,
            },
            428 => Self::PreconditionRequired { message },
            429 => Self::Throttled {
                retry_after: parse_retry_after(headers).unwrap_or(DEFAULT_RETRY_AFTER),
                message,
            },
            401 => Self::Unauthorized { message },
            403 => Self::Forbidden { message },
            404 | 410 => Self::NotFound {
                message: not_found(
                    &message,
                    web_api.is_some(),
                    details.is_some() && ctx.key.is_some(),
                ),
            },
            408 => Self::unavailable(Some(status), message),
            500 if details
                .as_ref()
                .is_some_and(ODataErrorDetails::is_write_failure) =>
            {
                Self::Rejected { status, message }
            }
            400..=499 => Self::Rejected { status, message },
            _ => Self::unavailable(Some(status), message),
        }
    }
}

/// What a request was about, so error messages can name it.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    pub method: &'static str,
    pub key: Option<&'a OrderKey>,
    /// The `If-Match` sent, if any.
    pub if_match: Option<&'a ETag>,
}

impl ResponseContext<'_> {
    /// `<D365 text> [PATCH usmf/SO-1 → 412, If-Match W/"…"]`.
    fn describe(&self, status: u16, d365_text: &str) -> String {
        let mut out = format!("{d365_text} [{}", self.method);
        if let Some(key) = self.key {
            out.push_str(&format!(" {key}"));
        }
        out.push_str(&format!(" → {status}"));
        if let Some(etag) = self.if_match {
            out.push_str(&format!(", If-Match {etag}"));
        }
        out.push(']');
        out
    }
}

/// A 404's message, saying whether the route or the order is missing.
fn not_found(described: &str, web_api: bool, order: bool) -> String {
    let what = if web_api {
        "no such route (check the connection's url and entitySet)"
    } else if order {
        "order not found"
    } else {
        "not found"
    };
    format!("{what}: {described}")
}

/// Text for an answer without an OData error body: a short plain-text body
/// if there is one (proxies, gateways), else the status's reason phrase.
fn fallback_text(status: u16, body: &[u8]) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("unexpected status");
    match std::str::from_utf8(body).map(str::trim) {
        Ok(text) if !text.is_empty() => {
            format!("{reason}: {}", truncate(text, MAX_MESSAGE_CHARS / 4))
        }
        _ => reason.to_owned(),
    }
}

/// A `Location` fit for a message: without query and fragment (a login
/// page's parameters are nobody's business), and not too long.
fn redacted_location(raw: &str) -> String {
    let raw = raw.trim();
    let cut = raw.find(['?', '#']).unwrap_or(raw.len());
    let mut out = truncate(&raw[..cut], MAX_MESSAGE_CHARS / 4).to_owned();
    if cut < raw.len() {
        out.push_str("?…");
    }
    out
}

/// `Retry-After` as delay-seconds [doc], or as an HTTP-date [RFC 9110];
/// capped at [`MAX_RETRY_AFTER`]. `None` when absent or unreadable.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = raw.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let at = jiff::fmt::rfc2822::parse(raw).ok()?.timestamp();
        let secs = at.duration_since(jiff::Timestamp::now()).as_secs_f64();
        Duration::try_from_secs_f64(secs.max(0.0)).ok()?
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
