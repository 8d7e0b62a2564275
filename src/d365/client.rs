//! The per-connection OData client: one entity read, one conditional write.
//!
//! Builds URLs and bodies and reads answers into [`Entity`] and
//! [`PatchOutcome`]; sending (token, limiter, 401 retry, classification)
//! is the [`Sender`]'s, batching the [`Coalescer`]'s.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};
use url::Url;

use super::auth::TokenCache;
use super::bulk_read::Reader;
use super::coalesce::Coalescer;
use super::entity::{Entity, PatchOutcome, entity_from};
use super::http::Transport;
use super::limiter::Limiter;
use super::metadata::{
    EntityCapabilities, MAX_METADATA_BYTES, METADATA_TIME_BUDGET, MetadataError, read_capabilities,
};
use super::sender::{ODataRequest, Sender};
use super::settings::check_select;
use super::{ConnectionSettings, D365Error, ETag, OrderKey, RequestObserver};

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
    sender: Arc<Sender>,
    /// Present when `settings.batch` is: PATCHes then go through `$batch`.
    batcher: Option<Coalescer>,
    /// Present when `settings.batch` is: order reads then go out in bulk.
    reader: Option<Reader>,
}

impl fmt::Debug for D365Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("D365Client")
            .field("odata_root", &self.inner.odata_root)
            .field("entity_set", &self.inner.settings.entity_set)
            .field("sender", &self.inner.sender)
            .finish_non_exhaustive()
    }
}

impl D365Client {
    /// Validates the settings and builds the client; sends nothing.
    pub fn new(
        settings: ConnectionSettings,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self, D365Error> {
        settings.validate()?;
        // Redirects are answers, never followed (D365Error::Redirected): a
        // PATCH redirected elsewhere, or turned into a GET, proves nothing.
        // The token requests share this client, so they follow none either.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(settings.writer.user_agent())
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| D365Error::config(format!("HTTP client: {e}")).caused_by(e))?;
        let transport = Transport::new(
            http,
            observer,
            settings.request_timeout,
            settings.max_answer_bytes,
        )
        .fenced_by(settings.writer.fence.clone());
        let tokens = TokenCache::new(
            transport.clone(),
            settings.token_endpoint()?,
            settings.client_id.trim().to_owned(),
            settings.credential.clone(),
            settings.effective_scope(),
        );
        let per_second = NonZeroU32::new(settings.max_requests_per_second).expect("validated");
        let concurrent = NonZeroU32::new(settings.max_concurrent_requests).expect("validated");
        let limiter = if settings.adaptive_concurrency {
            Limiter::adaptive(per_second, concurrent)
        } else {
            Limiter::new(per_second, concurrent)
        };
        let sender = Arc::new(Sender::new(transport, tokens, limiter));
        let odata_root = settings.odata_root().to_string();
        // One switch: `$batch` writes and bulk reads go together.
        let (batcher, reader) = match settings.batch {
            Some(batch) => {
                let url = Url::parse(&format!("{odata_root}$batch"))
                    .map_err(|e| D365Error::config(format!("$batch URL: {e}")).caused_by(e))?;
                let reader = Reader::new(
                    settings.odata_root(),
                    settings.collection_url()?,
                    sender.clone(),
                );
                (
                    Some(Coalescer::new(batch, url, sender.clone())),
                    Some(reader),
                )
            }
            None => (None, None),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                odata_root,
                sender,
                batcher,
                reader,
            }),
        })
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.inner.settings
    }

    /// The connection's request path (token, limiter, classification), for
    /// reads built in sibling modules.
    pub(crate) fn sender(&self) -> &Sender {
        &self.inner.sender
    }

    /// Requests this connection lets be in flight now: the adaptive limit,
    /// or `max_concurrent_requests` when fixed.
    pub fn concurrency_limit(&self) -> u32 {
        self.inner
            .sender
            .concurrency_limit()
            .unwrap_or(self.inner.settings.max_concurrent_requests)
    }

    /// Remaining connection-wide pause after a 429, for status and requeue
    /// decisions (a request made now would first wait this long).
    pub fn paused_for(&self) -> Option<Duration> {
        self.inner.sender.paused_for()
    }

    /// Obtains a token (from the cache or Entra) without calling D365: a
    /// cheap check that the credentials work.
    pub async fn authenticate(&self) -> Result<(), D365Error> {
        self.inner.sender.authenticate().await
    }

    /// `GET <root>/<set>(<key>)?cross-company=true&$select=…`. The ETag is
    /// the body's `@odata.etag`, else the `ETag` header; neither is an
    /// `InvalidResponse`. An empty `select` reads every property. With
    /// batching on, the read travels in a collection read with the other
    /// orders' read meanwhile (see `bulk_read`); the result is this
    /// order's own either way.
    pub async fn get_order(&self, key: &OrderKey, select: &[&str]) -> Result<Entity, D365Error> {
        check_select(select)?;
        if let Some(reader) = &self.inner.reader {
            return reader.get(key, select).await;
        }
        let mut url = self.entity_url(key)?;
        let mut query = "cross-company=true".to_owned();
        if !select.is_empty() {
            query.push_str("&$select=");
            query.push_str(&select.join(","));
        }
        url.set_query(Some(&query));
        let request = ODataRequest {
            method: Method::GET,
            url,
            key: Some(key),
            if_match: None,
            body: None,
        };
        let answer = self.inner.sender.execute(&request).await?;
        let body = answer.json.ok_or_else(|| {
            D365Error::invalid(format!(
                "GET {key}: answer {} is not a JSON object",
                answer.status
            ))
        })?;
        entity_from(body, &answer.headers).ok_or_else(|| {
            D365Error::invalid(format!(
                "GET {key}: no @odata.etag in the body and no ETag header"
            ))
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
            D365Error::config(format!("PATCH {key}: changes not serializable: {e}")).caused_by(e)
        })?;
        if let Some(batcher) = &self.inner.batcher {
            return batcher.patch(key, if_match, url.into(), body).await;
        }
        let request = ODataRequest {
            method: Method::PATCH,
            url,
            key: Some(key),
            if_match: Some(if_match),
            body: Some(("application/json".to_owned(), body)),
        };
        let answer = self.inner.sender.execute(&request).await?;
        Ok(PatchOutcome::from_answer(
            answer.status,
            &answer.headers,
            answer.json,
        ))
    }

    /// Reads `<root>/$metadata` as a stream and returns what it says of the
    /// connection's entity set and of the properties `fields` (the mapped
    /// ones), within [`MAX_METADATA_BYTES`] and [`METADATA_TIME_BUDGET`].
    /// The read stops once the set and its type are known.
    pub async fn entity_capabilities(
        &self,
        fields: &[&str],
    ) -> Result<EntityCapabilities, CapabilityError> {
        let url = Url::parse(&format!("{}$metadata", self.inner.odata_root))
            .map_err(|e| D365Error::config(format!("$metadata URL: {e}")).caused_by(e))?;
        let request = ODataRequest {
            method: Method::GET,
            url,
            key: None,
            if_match: None,
            body: None,
        };
        let budget = METADATA_TIME_BUDGET;
        let read = async {
            let response = self.inner.sender.open(&request, budget).await?;
            let chunks = Box::pin(futures::stream::try_unfold(response, |mut r| async move {
                Ok::<_, reqwest::Error>(r.chunk().await?.map(|chunk| (chunk, r)))
            }));
            let set = &self.inner.settings.entity_set;
            Ok(read_capabilities(chunks, MAX_METADATA_BYTES, set, fields).await?)
        };
        tokio::time::timeout(budget, read)
            .await
            .unwrap_or(Err(CapabilityError::Metadata(MetadataError::TimedOut(
                budget,
            ))))
    }

    fn entity_url(&self, key: &OrderKey) -> Result<Url, D365Error> {
        let segment = key.path_segment(&self.inner.settings.entity_set);
        Url::parse(&format!("{}{segment}", self.inner.odata_root))
            .map_err(|e| D365Error::config(format!("URL for {key}: {e}")).caused_by(e))
    }
}

/// Why `$metadata` gave no capabilities: the request failed, or the
/// document did not hold them.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error(transparent)]
    D365(#[from] D365Error),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use secrecy::SecretString;

    use super::*;
    use crate::d365::NoopObserver;

    #[tokio::test]
    async fn transport_failure_keeps_its_source() {
        // Nothing listens on port 1: the token request cannot connect.
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let mut settings =
            ConnectionSettings::new(url.clone(), url, "t", "c", SecretString::from("s3cret"));
        settings.destinations = crate::d365::Destinations::parse("127.0.0.1", "127.0.0.1").unwrap();
        let client = D365Client::new(settings, Arc::new(NoopObserver)).unwrap();
        let err = client.authenticate().await.unwrap_err();
        assert!(
            matches!(&err, D365Error::Unavailable { status: None, .. }),
            "{err:?}"
        );
        let source = err.source().expect("the transport error is kept");
        let text = err.to_string();
        assert!(text.contains(&source.to_string()), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
