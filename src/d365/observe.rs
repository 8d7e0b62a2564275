//! A hook for metrics, so this module stays free of any metrics library.

use std::time::Duration;

use reqwest::Method;

/// Which service a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// The Entra token endpoint.
    Token,
    /// An OData entity request under `/data`.
    Entity,
    /// A `$batch` call under `/data`: one HTTP exchange carrying many
    /// operations, whose own answers are [`OperationEvent`]s.
    Batch,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Entity => "entity",
            Self::Batch => "batch",
        }
    }
}

/// One finished HTTP exchange (every attempt, including the retry after a
/// 401, is its own event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    /// `"GET"`, `"PATCH"` or `"POST"`.
    pub method: &'static str,
    pub kind: RequestKind,
    /// `None` when no answer arrived (timeout, connection error).
    pub status: Option<u16>,
    /// From sending to the end of the body (limiter waits excluded).
    pub duration: Duration,
}

/// One operation's answer inside a `$batch` answer: the status a single
/// request would have had, so a refused operation counts like a refused
/// request although its HTTP call (a [`RequestKind::Batch`]) succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEvent {
    /// The operation's method (`"PATCH"`).
    pub method: &'static str,
    /// `None` when the answer has no part for it (never run).
    pub status: Option<u16>,
}

/// Receives every [`RequestEvent`] and [`OperationEvent`]; the operator
/// counts them in Prometheus. Called inline on the request path: keep it
/// cheap and non-blocking.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, event: &RequestEvent);

    /// Default: ignored, for observers that only count HTTP exchanges.
    fn observe_operation(&self, _event: &OperationEvent) {}
}

/// An observer that ignores everything (tests, tools).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn observe(&self, _event: &RequestEvent) {}
}

/// The name events and logs use for `method`.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PATCH => "PATCH",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}
