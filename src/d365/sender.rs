//! The OData request path above one exchange, in two layers:
//!
//! - auth: each attempt carries a fresh bearer token; a 401 invalidates
//!   that token's generation and the request is resent exactly once;
//! - classification: a 2xx is an answer, anything else becomes a
//!   [`D365Error`], and a 429 pauses the whole connection; while it is
//!   paused, requests fail at once as `Throttled` without being sent.
//!
//! Held by the client and by the `$batch` coalescer, so a batch is paced,
//! authorised and classified like any single request without the coalescer
//! knowing the client.

use std::fmt;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, IF_MATCH};
use reqwest::{Method, RequestBuilder};
use secrecy::ExposeSecret;
use url::Url;

use super::auth::{AccessToken, TokenCache};
use super::error::ResponseContext;
use super::http::{Label, Opened, Reply, Transport};
use super::limiter::{Limiter, Paused, Permit};
use super::observe::{OperationEvent, method_name};
use super::{D365Error, ETag, OrderKey, RequestKind};

const ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");
const ODATA_MAX_VERSION: HeaderName = HeaderName::from_static("odata-maxversion");
const PREFER: HeaderName = HeaderName::from_static("prefer");
/// Asked of every PATCH (alone or in a `$batch`): a 200 with the entity
/// proves the write without the read a 204 needs [spec]. Whether F&O
/// honours it is unverified; a 204 is still read back.
pub(crate) const RETURN_REPRESENTATION: &str = "return=representation";

/// What a request refused by a pause in force means: `Throttled` with the
/// time left, so the caller comes back when the pause ends. Nothing was
/// sent, so no 429 was answered and the pause is not extended.
fn not_sent(what: &str, paused: Paused) -> D365Error {
    let left = paused.left;
    D365Error::Throttled {
        retry_after: left,
        message: format!(
            "{what}: not sent, the connection is paused for another {}s after a 429 (service protection)",
            left.as_secs_f64().ceil()
        ),
    }
}

/// One OData request under `/data`.
pub(crate) struct ODataRequest<'a> {
    pub method: Method,
    pub url: Url,
    /// The order it is about; `None` for a `$batch`.
    pub key: Option<&'a OrderKey>,
    pub if_match: Option<&'a ETag>,
    /// Content type and bytes.
    pub body: Option<(String, Vec<u8>)>,
}

impl ODataRequest<'_> {
    /// A GET of `url` about no single order (a collection or a page).
    pub(crate) fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            key: None,
            if_match: None,
            body: None,
        }
    }

    /// What logs and messages name: the order, the batch, or (a GET with
    /// no key) the collection read, by its entity set.
    fn target(&self) -> String {
        match self.key {
            Some(key) => key.to_string(),
            None if self.method == Method::GET => self
                .url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or_default()
                .to_owned(),
            None => "$batch".to_owned(),
        }
    }

    /// A `$batch` (a write with no order key, see `key`) or an entity request.
    fn kind(&self) -> RequestKind {
        if self.key.is_none() && self.method == Method::POST {
            RequestKind::Batch
        } else {
            RequestKind::Entity
        }
    }

    /// `Accept` matching the body: a multipart `$batch` is answered in kind.
    fn accept(&self) -> &'static str {
        match &self.body {
            Some((content_type, _)) if content_type.starts_with("multipart/") => "multipart/mixed",
            None if self.url.path().ends_with("/$metadata") => "application/xml",
            _ => "application/json",
        }
    }
}

/// The connection's way to D365: transport, tokens and limiter.
pub(crate) struct Sender {
    transport: Transport,
    tokens: TokenCache,
    limiter: Limiter,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(crate) fn new(transport: Transport, tokens: TokenCache, limiter: Limiter) -> Self {
        Self {
            transport,
            tokens,
            limiter,
        }
    }

    /// Obtains a token without calling D365.
    pub(crate) async fn authenticate(&self) -> Result<(), D365Error> {
        self.tokens.token().await.map(drop)
    }

    /// Reports one operation of a `$batch` answer, as its HTTP call was.
    pub(crate) fn observe_operation(&self, event: &OperationEvent) {
        self.transport.observe_operation(event);
    }

    /// Pauses the connection, as a 429 does.
    pub(crate) fn pause(&self, delay: Duration) {
        self.limiter.pause(delay);
    }

    pub(crate) fn paused_for(&self) -> Option<Duration> {
        self.limiter.paused_for()
    }

    /// The adaptive concurrency limit, if the connection has one.
    pub(crate) fn concurrency_limit(&self) -> Option<u32> {
        self.limiter.concurrency_limit()
    }

    /// The error for `what`, when the connection is paused now.
    pub(crate) fn refuse_if_paused(&self, what: &str) -> Result<(), D365Error> {
        match self.limiter.paused_for() {
            Some(left) => Err(not_sent(what, Paused { left })),
            None => Ok(()),
        }
    }

    /// Resolves once the connection is paused (at once if it is now).
    pub(crate) async fn until_paused(&self) {
        self.limiter.until_paused().await;
    }

    /// The classification layer: a 2xx answer, or the error it means. A
    /// 429 pauses the connection for its `Retry-After`.
    /// Error answers and `$batch` answers (whose parts may be errors) are
    /// scrubbed of the request's token and the client secret first.
    pub(crate) async fn execute(&self, request: &ODataRequest<'_>) -> Result<Reply, D365Error> {
        self.execute_with(None, request).await
    }

    /// Waits for the limiter's leave to send one request, or fails at once
    /// as `Throttled` while the connection is paused. For callers that
    /// coalesce (bulk reads, `$batch`): they decide what goes in the
    /// request only once it may leave, so it carries everything that
    /// queued while the limiter made it wait, and no rate is spent on a
    /// request that turns out empty.
    pub(crate) async fn permit(&self, what: &str) -> Result<Permit<'_>, D365Error> {
        self.limiter
            .acquire()
            .await
            .map_err(|paused| not_sent(what, paused))
    }

    /// [`Sender::execute`] with the first attempt's leave already taken
    /// ([`Sender::permit`]); a resend after a 401 waits for its own.
    pub(crate) async fn execute_permitted(
        &self,
        permit: Permit<'_>,
        request: &ODataRequest<'_>,
    ) -> Result<Reply, D365Error> {
        self.execute_with(Some(permit), request).await
    }

    async fn execute_with(
        &self,
        permit: Option<Permit<'_>>,
        request: &ODataRequest<'_>,
    ) -> Result<Reply, D365Error> {
        let (mut reply, token) = self.send_authorized(request, permit).await?;
        if !reply.is_success() || request.key.is_none() {
            self.tokens.redact_body(&mut reply.body, &token);
        }
        if reply.is_success() {
            return Ok(reply);
        }
        let ctx = ResponseContext {
            method: method_name(&request.method),
            key: request.key,
            if_match: request.if_match,
        };
        let mut err =
            D365Error::from_odata_response(&ctx, reply.status, &reply.headers, &reply.body);
        match &mut err {
            D365Error::Throttled { retry_after, .. } => {
                self.limiter.pause(*retry_after);
                tracing::warn!(key = %request.target(), retry_after_ms = retry_after.as_millis() as u64, "D365 throttled: pausing the connection");
            }
            // The auth layer has refreshed the token once already.
            D365Error::Unauthorized { message } => {
                message.push_str(" (still 401 after a token refresh)");
            }
            _ => {}
        }
        Err(err)
    }

    /// A GET whose 2xx answer is handed back unread, to be streamed by the
    /// caller (`$metadata`): same token, 401 resend, limiter and error
    /// classification as [`Sender::execute`]. `timeout` replaces the
    /// connection's per-request timeout and covers the body too.
    pub(crate) async fn open(
        &self,
        request: &ODataRequest<'_>,
        timeout: Duration,
    ) -> Result<reqwest::Response, D365Error> {
        let mut attempt = 1;
        loop {
            let token = self.tokens.token().await?;
            let method = method_name(&request.method);
            let target = request.url.path().to_owned();
            let label = Label {
                method,
                kind: RequestKind::Entity,
                target: &target,
                etag_sent: "",
                attempt,
            };
            let http = self.build(request, &token)?.timeout(timeout);
            let opened = {
                let _permit = self
                    .limiter
                    .acquire()
                    .await
                    .map_err(|paused| not_sent(&format!("{method} {target}"), paused))?;
                self.transport
                    .open(http, &label)
                    .await
                    .map_err(|f| f.into_error(|why| format!("{method} {target}: {why}")))?
            };
            let mut reply = match opened {
                Opened::Stream(response) => return Ok(response),
                Opened::Refused(reply) => reply,
            };
            if reply.status == 401 && attempt == 1 {
                self.tokens.invalidate(token.generation);
                attempt = 2;
                continue;
            }
            self.tokens.redact_body(&mut reply.body, &token);
            let ctx = ResponseContext {
                method,
                key: None,
                if_match: None,
            };
            let err =
                D365Error::from_odata_response(&ctx, reply.status, &reply.headers, &reply.body);
            if let D365Error::Throttled { retry_after, .. } = &err {
                self.limiter.pause(*retry_after);
            }
            return Err(err);
        }
    }

    /// The auth layer: sends with the current token; after a 401 forgets
    /// that token and resends once with a new one. Any complete answer
    /// (the second 401 too) goes up to classification.
    /// Returns the answer with the token its request carried.
    async fn send_authorized(
        &self,
        request: &ODataRequest<'_>,
        permit: Option<Permit<'_>>,
    ) -> Result<(Reply, AccessToken), D365Error> {
        let token = self.tokens.token().await?;
        let reply = self.send_once(request, &token, 1, permit).await?;
        if reply.status != 401 {
            return Ok((reply, token));
        }
        self.tokens.invalidate(token.generation);
        let token = self.tokens.token().await?;
        let reply = self.send_once(request, &token, 2, None).await?;
        Ok((reply, token))
    }

    /// One attempt through the limiter (unless its leave was taken
    /// already); a transport failure is `Unavailable`, keeping the
    /// transport error as its source.
    async fn send_once(
        &self,
        request: &ODataRequest<'_>,
        token: &AccessToken,
        attempt: u32,
        permit: Option<Permit<'_>>,
    ) -> Result<Reply, D365Error> {
        let method = method_name(&request.method);
        let target = request.target();
        let label = Label {
            method,
            kind: request.kind(),
            target: &target,
            etag_sent: request.if_match.map(ETag::as_str).unwrap_or(""),
            attempt,
        };
        let http = self.build(request, token)?;
        let mut permit = match permit {
            Some(permit) => permit,
            None => self.permit(&format!("{method} {target}")).await?,
        };
        let reply = self
            .transport
            .send_once(http, &label)
            .await
            .map_err(|f| f.into_error(|why| format!("{method} {target}: {why}")))?;
        permit.answered(reply.status);
        Ok(reply)
    }

    /// The request with OData headers and the bearer token.
    fn build(
        &self,
        request: &ODataRequest<'_>,
        token: &AccessToken,
    ) -> Result<RequestBuilder, D365Error> {
        let mut http = self
            .transport
            .request(request.method.clone(), request.url.clone())
            .bearer_auth(token.secret.expose_secret())
            .header(ODATA_VERSION, "4.0")
            .header(ODATA_MAX_VERSION, "4.0")
            .header(ACCEPT, request.accept());
        if let Some(etag) = request.if_match {
            let value = HeaderValue::from_str(etag.as_str()).map_err(|e| {
                D365Error::config(format!("ETag {etag} is not a header value")).caused_by(e)
            })?;
            http = http.header(IF_MATCH, value);
        }
        if request.method == reqwest::Method::PATCH {
            http = http.header(PREFER, RETURN_REPRESENTATION);
        }
        if request.accept() == "multipart/mixed" {
            // Answer every changeset, not just those before the first
            // failure [spec]; whether F&O honours it is unverified, so
            // an operation left unanswered is still "not sent".
            http = http.header("Prefer", "odata.continue-on-error");
        }
        if let Some((content_type, body)) = &request.body {
            http = http
                .header(CONTENT_TYPE, content_type.as_str())
                .body(body.clone());
        }
        Ok(http)
    }
}
