//! Entra ID client-credentials tokens, cached per connection.
//!
//! Hand-written rather than `azure_identity`: that crate cannot be pointed
//! at an arbitrary authority (the emulator, a sovereign cloud behind a
//! proxy) without work, and pulls a large dependency tree for what is one
//! form POST and a cache. How the client proves itself (secret,
//! certificate assertion, workload identity) is the [`Credential`]'s part.
//!
//! The cache refreshes before expiry (at 80% of the lifetime, at most 5 min
//! early), lets one task refresh at a time while the others wait for its
//! result (single flight, also for failures), and keeps using a still-valid
//! token if an early refresh fails.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::credential::{ClientProof, Credential};
use super::error::parse_retry_after;
use super::http::{Label, Reply, Transport};
use super::redact::redact;
use super::{D365Error, DEFAULT_RETRY_AFTER, RequestKind};
use crate::text::truncate;

/// Refresh no earlier than this before expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// After a failed early refresh, wait this long before trying again.
const REFRESH_RETRY: Duration = Duration::from_secs(30);
/// Do not start a request with a token this close to expiry.
const EXPIRY_SLACK: Duration = Duration::from_secs(10);
/// Token lifetimes are clamped to this range: shorter would mean a token
/// request per D365 request (a real short token ends in a 401 and one
/// refresh), longer than Entra ever grants (its policies stop at a day).
const MIN_LIFETIME: Duration = Duration::from_secs(60);
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// An `expires_in` above this (a year) is no lifetime but a bug or an
/// attack, and is refused rather than clamped.
const MAX_EXPIRES_IN_SECS: u64 = 366 * 24 * 3600;

/// A bearer token and the cache generation it came from (so a 401 only
/// invalidates the token that caused it).
#[derive(Clone)]
pub(crate) struct AccessToken {
    pub(crate) secret: SecretString,
    pub(crate) generation: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

pub(crate) struct TokenCache {
    transport: Transport,
    endpoint: Url,
    client_id: String,
    credential: Credential,
    scope: String,
    current: RwLock<Option<Cached>>,
    /// Held while refreshing; holds the last refresh failure for the tasks
    /// that queued behind it.
    refresh: tokio::sync::Mutex<Option<D365Error>>,
    attempts: AtomicU64,
    generation: AtomicU64,
}

/// Hand-written so neither the secret nor a token can reach a log.
impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has_token = self.read().is_some();
        f.debug_struct("TokenCache")
            .field("endpoint", &self.endpoint.as_str())
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .field("scope", &self.scope)
            .field("has_token", &has_token)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    /// A number in v2.0, a string in some v1 answers.
    expires_in: serde_json::Value,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenCache {
    pub(crate) fn new(
        transport: Transport,
        endpoint: Url,
        client_id: String,
        credential: Credential,
        scope: String,
    ) -> Self {
        Self {
            transport,
            endpoint,
            client_id,
            credential,
            scope,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// A token fit to send now, fetching one if needed.
    pub(crate) async fn token(&self) -> Result<AccessToken, D365Error> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let attempts_seen = self.attempts.load(Ordering::Acquire);
        let mut last_failure = self.refresh.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        if self.attempts.load(Ordering::Acquire) != attempts_seen
            && let Some(err) = last_failure.as_ref()
        {
            // The refresh we queued behind failed: share its answer
            // instead of hammering the token endpoint once per waiter.
            return Err(err.clone());
        }
        let result = self.fetch().await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(cached) => {
                let token = cached.token.clone();
                *self.write() = Some(cached);
                *last_failure = None;
                Ok(token)
            }
            Err(err) => {
                *last_failure = Some(err.clone());
                let mut current = self.write();
                match current.as_mut() {
                    Some(c) if Instant::now() + EXPIRY_SLACK < c.expires_at => {
                        tracing::warn!(error = %err, "token refresh failed; using the current token until it expires");
                        c.refresh_at = (Instant::now() + REFRESH_RETRY).min(c.expires_at);
                        Ok(c.token.clone())
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// Forgets the token of `generation` after D365 refused it; a newer
    /// token (refreshed meanwhile by another task) is kept.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut current = self.write();
        if current
            .as_ref()
            .is_some_and(|c| c.token.generation == generation)
        {
            *current = None;
        }
    }

    fn fresh(&self) -> Option<AccessToken> {
        let current = self.read();
        let cached = current.as_ref()?;
        (Instant::now() < cached.refresh_at).then(|| cached.token.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Cached>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Cached>> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// One token request through the shared transport (observed and
    /// logged like any request, but not paced by D365's limiter).
    async fn fetch(&self) -> Result<Cached, D365Error> {
        let proof = self
            .credential
            .proof(&self.client_id, self.endpoint.as_str())
            .await?;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
        ];
        form.extend(proof.fields.iter().map(|(k, v)| (*k, v.expose_secret())));
        let request = self
            .transport
            .request(Method::POST, self.endpoint.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        let label = Label {
            method: "POST",
            kind: RequestKind::Token,
            target: self.endpoint.as_str(),
            etag_sent: "",
            attempt: 1,
        };
        let requested_at = Instant::now();
        // The proof travels in the form body, which no transport error
        // quotes: the source can be kept as it is.
        let reply = self
            .transport
            .send_once(request, &label)
            .await
            .map_err(|f| {
                f.into_error(|why| {
                    self.redact(format!("token endpoint {}: {why}", self.endpoint), &proof)
                })
            })?;
        if reply.is_success() {
            return self.parse_token(&reply.body, requested_at);
        }
        Err(self.refusal(&reply, &proof))
    }

    /// The error for a non-2xx token answer, with Entra's own reason.
    fn refusal(&self, reply: &Reply, proof: &ClientProof) -> D365Error {
        let status = reply.status;
        if (300..=399).contains(&status) {
            let who = format!("token endpoint {}", self.endpoint);
            return match D365Error::redirected(status, &reply.headers, &who, "authorityUrl") {
                D365Error::Redirected {
                    status,
                    location,
                    message,
                } => D365Error::Redirected {
                    status,
                    location,
                    message: self.redact(message, proof),
                },
                other => other,
            };
        }
        let detail = serde_json::from_slice::<TokenError>(&reply.body)
            .ok()
            .map(|r| {
                let description = r.error_description.unwrap_or_default();
                let first_line = description.lines().next().unwrap_or_default();
                format!(
                    "{}: {}",
                    r.error.unwrap_or_default(),
                    truncate(first_line, 512)
                )
            })
            .unwrap_or_else(|| {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("unexpected status")
                    .to_owned()
            });
        let message = self.redact(
            format!(
                "token endpoint {} answered {status} for client {}: {detail}",
                self.endpoint, self.client_id
            ),
            proof,
        );
        match status {
            429 => D365Error::Throttled {
                retry_after: parse_retry_after(&reply.headers).unwrap_or(DEFAULT_RETRY_AFTER),
                message,
            },
            400..=499 => D365Error::Unauthorized { message },
            _ => D365Error::unavailable(Some(status), message),
        }
    }

    fn parse_token(&self, body: &[u8], requested_at: Instant) -> Result<Cached, D365Error> {
        let invalid =
            |why: &str| D365Error::invalid(format!("token endpoint {}: {why}", self.endpoint));
        let parsed: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| invalid("answer is not a token response").caused_by(e))?;
        if parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(invalid("token_type is not Bearer"));
        }
        if parsed.access_token.is_empty() {
            return Err(invalid("empty access_token"));
        }
        let expires_in = match &parsed.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|secs| (1..=MAX_EXPIRES_IN_SECS).contains(secs))
        .ok_or_else(|| invalid("missing or implausible expires_in (1 s to 1 year)"))?;
        let lifetime = Duration::from_secs(expires_in).clamp(MIN_LIFETIME, MAX_LIFETIME);
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::debug!(expires_in, generation, "access token obtained");
        Ok(Cached {
            token: AccessToken {
                secret: SecretString::from(parsed.access_token),
                generation,
            },
            // Cannot overflow: the lifetime is at most a day.
            refresh_at: requested_at + refresh_after(lifetime),
            expires_at: requested_at + lifetime,
        })
    }

    /// Scrubs `token` (the one a request carried) and the client secret
    /// from an answer's body before anything quotes it.
    pub(crate) fn redact_body(&self, body: &mut Vec<u8>, token: &AccessToken) {
        let mut secrets = vec![token.secret.expose_secret()];
        secrets.extend(self.credential.static_secret());
        redact(body, &secrets);
    }

    /// Belt and braces: whatever a misbehaving endpoint echoes, neither the
    /// client secret nor the assertion it was sent leaves in a message.
    fn redact(&self, message: String, proof: &ClientProof) -> String {
        let mut body = message.into_bytes();
        let secrets: Vec<&str> = proof.secrets().collect();
        redact(&mut body, &secrets);
        String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// When to refresh a token of `lifetime`: at 80% of it, but no more than
/// [`MAX_REFRESH_MARGIN`] early.
pub(crate) fn refresh_after(lifetime: Duration) -> Duration {
    let margin = (lifetime / 5).min(MAX_REFRESH_MARGIN);
    lifetime - margin
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
