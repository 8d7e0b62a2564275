//! The per-connection OData client: one entity read, one conditional write.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, IF_MATCH};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;

use super::auth::TokenCache;
use super::coalesce::Coalescer;
use super::error::ResponseContext;
use super::limiter::Limiter;
use super::settings::is_identifier;
use super::{
    ConnectionSettings, D365Error, ETag, OrderKey, RequestEvent, RequestKind, RequestObserver,
};

const ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");
const ODATA_MAX_VERSION: HeaderName = HeaderName::from_static("odata-maxversion");

/// One entity as read: its version and its properties (OData annotations
/// such as `@odata.etag` and `@odata.context` removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub etag: ETag,
    pub fields: Map<String, Value>,
}

/// A successful PATCH. D365 answers 204 with no body [obs]; other OData
/// servers answer 200 with the entity. Callers must not rely on either: the
/// next reconcile reads afresh anyway.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOutcome {
    /// 204 (or a 2xx without a usable entity body); `etag` if the server
    /// sent one.
    NoContent { etag: Option<ETag> },
    /// 200 with the updated entity.
    Entity(Entity),
}

impl PatchOutcome {
    /// The new version, when the server told us.
    pub fn etag(&self) -> Option<&ETag> {
        match self {
            Self::NoContent { etag } => etag.as_ref(),
            Self::Entity(entity) => Some(&entity.etag),
        }
    }
}

/// The OData client of one D365 connection. Cheap to clone; all clones
/// share the token cache and the limiter, which is the point: every order
/// of a connection is paced together.
#[derive(Clone)]
pub struct D365Client {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ConnectionSettings,
    odata_root: String,
    http: reqwest::Client,
    tokens: TokenCache,
    limiter: Limiter,
    observer: Arc<dyn RequestObserver>,
    /// Present when `settings.batch` is: PATCHes then go through `$batch`.
    batcher: Option<Coalescer>,
}

impl fmt::Debug for D365Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("D365Client")
            .field("odata_root", &self.inner.odata_root)
            .field("entity_set", &self.inner.settings.entity_set)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// A successful (2xx) answer, body parsed when it is a JSON object; the
/// raw bytes are kept only when it is not (a `$batch` answer).
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: Option<Map<String, Value>>,
    pub raw: Vec<u8>,
}

impl D365Client {
    /// Validates the settings and builds the client; sends nothing.
    pub fn new(
        settings: ConnectionSettings,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, D365Error> {
        settings.validate()?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("sales-order-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| D365Error::config(format!("HTTP client: {e}")))?;
        let tokens = TokenCache::new(
            http.clone(),
            settings.token_endpoint()?,
            settings.client_id.trim().to_owned(),
            settings.client_secret.clone(),
            settings.effective_scope(),
            settings.request_timeout,
            observer.clone(),
        );
        let limiter = Limiter::new(
            NonZeroU32::new(settings.max_requests_per_second).expect("validated"),
            NonZeroU32::new(settings.max_concurrent_requests).expect("validated"),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                odata_root: settings.odata_root().to_string(),
                batcher: settings.batch.map(Coalescer::new),
                settings,
                http,
                tokens,
                limiter,
                observer,
            }),
        })
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.inner.settings
    }

    /// Remaining connection-wide pause after a 429, for status and requeue
    /// decisions (a request made now would first wait this long).
    pub fn paused_for(&self) -> Option<Duration> {
        self.inner.limiter.paused_for()
    }

    /// Obtains a token (from the cache or Entra) without calling D365: a
    /// cheap check that the credentials work.
    pub async fn authenticate(&self) -> Result<(), D365Error> {
        self.inner.tokens.token().await.map(drop)
    }

    /// `GET <root>/<set>(<key>)?cross-company=true&$select=…`. The ETag is
    /// the body's `@odata.etag`, else the `ETag` header; neither is an
    /// `InvalidResponse`. An empty `select` reads every property.
    pub async fn get_order(&self, key: &OrderKey, select: &[&str]) -> Result<Entity, D365Error> {
        if let Some(bad) = select.iter().find(|f| !is_identifier(f)) {
            return Err(D365Error::config(format!(
                "$select field {bad:?} is not an OData property name"
            )));
        }
        let mut url = self.entity_url(key)?;
        let mut query = "cross-company=true".to_owned();
        if !select.is_empty() {
            query.push_str("&$select=");
            query.push_str(&select.join(","));
        }
        url.set_query(Some(&query));
        let answer = self
            .execute(Method::GET, url, Some(key), None, None)
            .await?;
        let headers = answer.headers;
        let body = answer.json.ok_or_else(|| D365Error::InvalidResponse {
            message: format!("GET {key}: answer {} is not a JSON object", answer.status),
        })?;
        entity_from(body, &headers).ok_or_else(|| D365Error::InvalidResponse {
            message: format!("GET {key}: no @odata.etag in the body and no ETag header"),
        })
    }

    /// `PATCH` of only `changes`, with `If-Match: <if_match>`, so a write
    /// based on a stale read fails (409/412 → [`D365Error::Conflict`])
    /// instead of overwriting someone else's change. With batching on, the
    /// PATCH waits up to the batch window and travels in a `$batch` with
    /// other orders' PATCHes; the result is this order's own either way.
    pub async fn patch_order(
        &self,
        key: &OrderKey,
        if_match: &ETag,
        changes: &Map<String, Value>,
    ) -> Result<PatchOutcome, D365Error> {
        if changes.is_empty() {
            return Err(D365Error::config(format!(
                "PATCH {key}: nothing to change (the caller should not write)"
            )));
        }
        let mut url = self.entity_url(key)?;
        url.set_query(Some("cross-company=true"));
        let body = serde_json::to_vec(changes).map_err(|e| {
            D365Error::config(format!("PATCH {key}: changes not serializable: {e}"))
        })?;
        if let Some(batcher) = &self.inner.batcher {
            return batcher.patch(self, key, if_match, url.into(), body).await;
        }
        let body = ("application/json".to_owned(), body);
        let answer = self
            .execute(Method::PATCH, url, Some(key), Some(if_match), Some(body))
            .await?;
        let etag_header = ETag::from_headers(&answer.headers);
        Ok(match answer.json {
            Some(body) if answer.status == 200 => match entity_from(body, &answer.headers) {
                Some(entity) => PatchOutcome::Entity(entity),
                None => PatchOutcome::NoContent { etag: etag_header },
            },
            _ => PatchOutcome::NoContent { etag: etag_header },
        })
    }

    pub(super) fn batcher(&self) -> Option<&Coalescer> {
        self.inner.batcher.as_ref()
    }

    /// `<root>/$batch`.
    pub(super) fn batch_url(&self) -> Result<Url, D365Error> {
        Url::parse(&format!("{}$batch", self.inner.odata_root))
            .map_err(|e| D365Error::config(format!("$batch URL: {e}")))
    }

    /// Pauses the connection, as a 429 does.
    pub(super) fn pause(&self, delay: Duration) {
        self.inner.limiter.pause(delay);
    }

    fn entity_url(&self, key: &OrderKey) -> Result<Url, D365Error> {
        let segment = key.path_segment(&self.inner.settings.entity_set);
        Url::parse(&format!("{}{segment}", self.inner.odata_root))
            .map_err(|e| D365Error::config(format!("URL for {key}: {e}")))
    }

    /// Sends one OData request through the limiter, with a fresh token; on
    /// a 401 invalidates that token, fetches another and retries exactly
    /// once. Non-2xx answers become errors; a 429 pauses the connection.
    /// `key` is `None` for a `$batch`; `body` is (content type, bytes).
    pub(super) async fn execute(
        &self,
        method: Method,
        url: Url,
        key: Option<&OrderKey>,
        if_match: Option<&ETag>,
        body: Option<(String, Vec<u8>)>,
    ) -> Result<Answer, D365Error> {
        let inner = &*self.inner;
        let method_name = super::observe::method_name(&method);
        // What the logs and messages name: the order, or the batch.
        let target = key.map_or_else(|| "$batch".to_owned(), ToString::to_string);
        let etag_sent = if_match.map(ETag::as_str).unwrap_or("");
        let mut attempt = 1u32;
        loop {
            let token = inner.tokens.token().await?;
            let mut request = inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.secret.expose_secret())
                .header(ODATA_VERSION, "4.0")
                .header(ODATA_MAX_VERSION, "4.0")
                .header(ACCEPT, accept(body.as_ref()))
                .timeout(inner.settings.request_timeout);
            if let Some(etag) = if_match {
                let value = HeaderValue::from_str(etag.as_str())
                    .map_err(|_| D365Error::config(format!("ETag {etag} is not a header value")))?;
                request = request.header(IF_MATCH, value);
            }
            if let Some((content_type, body)) = &body {
                request = request
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(body.clone());
            }
            let permit = inner.limiter.acquire().await;
            let started = Instant::now();
            let result = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    response
                        .bytes()
                        .await
                        .map(|bytes| (status, headers, bytes))
                        .map_err(|e| (Some(status), e))
                }
                Err(e) => Err((None, e)),
            };
            drop(permit);
            let duration = started.elapsed();
            let duration_ms = duration.as_millis() as u64;
            let status = match &result {
                Ok((status, ..)) => Some(*status),
                Err((status, _)) => *status,
            };
            inner.observer.observe(&RequestEvent {
                method: method_name,
                kind: RequestKind::Entity,
                status,
                duration,
            });

            let (status, headers, bytes) = match result {
                Ok(ok) => ok,
                Err((status, e)) => {
                    let why =
                        super::error::describe_transport_error(&e, inner.settings.request_timeout);
                    tracing::warn!(method = method_name, key = %target, etag_sent, attempt, duration_ms, error = %why, "D365 request failed");
                    return Err(D365Error::Unavailable {
                        status,
                        message: format!("{method_name} {target}: {why}"),
                    });
                }
            };
            if StatusCode::from_u16(status).is_ok_and(|s| s.is_success()) {
                let json = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| match v {
                        Value::Object(map) => Some(map),
                        _ => None,
                    });
                let raw = if json.is_none() {
                    bytes.to_vec()
                } else {
                    Vec::new()
                };
                let etag_received = ETag::from_response(json.as_ref(), &headers);
                let etag_received = etag_received.as_ref().map(ETag::as_str).unwrap_or("");
                tracing::info!(method = method_name, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request");
                return Ok(Answer {
                    status,
                    headers,
                    json,
                    raw,
                });
            }
            let etag_received = ETag::from_headers(&headers);
            let etag_received = etag_received.as_ref().map(ETag::as_str).unwrap_or("");
            tracing::info!(method = method_name, key = %target, status, etag_sent, etag_received, attempt, duration_ms, "D365 request refused");
            if status == 401 && attempt == 1 {
                inner.tokens.invalidate(token.generation);
                attempt += 1;
                continue;
            }
            let ctx = ResponseContext {
                method: method_name,
                key,
                if_match,
            };
            let mut err = D365Error::from_odata_response(&ctx, status, &headers, &bytes);
            match &mut err {
                D365Error::Throttled { retry_after, .. } => {
                    inner.limiter.pause(*retry_after);
                    tracing::warn!(key = %target, retry_after_ms = retry_after.as_millis() as u64, "D365 throttled: pausing the connection");
                }
                D365Error::Unauthorized { message } => {
                    message.push_str(" (still 401 after a token refresh)");
                }
                _ => {}
            }
            return Err(err);
        }
    }
}

/// `Accept` matching the body: a multipart `$batch` is answered in kind.
fn accept(body: Option<&(String, Vec<u8>)>) -> &'static str {
    match body {
        Some((content_type, _)) if content_type.starts_with("multipart/") => "multipart/mixed",
        _ => "application/json",
    }
}

/// Splits a body into an [`Entity`]; `None` without an ETag.
pub(super) fn entity_from(mut body: Map<String, Value>, headers: &HeaderMap) -> Option<Entity> {
    let etag = ETag::from_response(Some(&body), headers)?;
    body.retain(|name, _| !name.starts_with("@odata."));
    Some(Entity { etag, fields: body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entity_strips_annotations() {
        let body = json!({
            "@odata.context": "https://x/data/$metadata#SalesOrderHeadersV2/$entity",
            "@odata.etag": "W/\"v1\"",
            "SalesOrderStatus": "Backorder",
            "dataAreaId": "usmf"
        });
        let entity = entity_from(body.as_object().unwrap().clone(), &HeaderMap::new()).unwrap();
        assert_eq!(entity.etag.as_str(), "W/\"v1\"");
        assert_eq!(
            entity.fields.keys().collect::<Vec<_>>(),
            ["SalesOrderStatus", "dataAreaId"]
        );
        let no_etag = json!({"A": 1});
        assert!(entity_from(no_etag.as_object().unwrap().clone(), &HeaderMap::new()).is_none());
    }
}
