//! D365Connection -> D365 client. One client (token cache, limiter) per
//! connection, shared by all its orders, rebuilt only when the connection's
//! spec or its Secret changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use secrecy::SecretString;

use super::admission::Admission;
use super::sync::OrderRules;
use super::sync::Resolved;
use crate::api::{CREDENTIALS_LABEL, CREDENTIALS_SELECTOR, D365Connection, Reason};
use crate::d365::{
    BatchSettings, ConnectionSettings, D365Client, DEFAULT_MAX_ANSWER_BYTES, Destinations,
    RequestObserver, Writer,
};
use crate::locks::lock;

/// Why an order's connection could not be resolved; each is a condition.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("D365Connection {namespace}/{name} not found")]
    ConnectionNotFound { namespace: String, name: String },
    #[error("D365Connection {connection} is invalid: {message}")]
    InvalidConnection { connection: String, message: String },
    /// Missing, or not labelled: the operator sees only labelled Secrets,
    /// so it cannot tell the two apart without reading one it must not.
    #[error(
        "Secret {namespace}/{name} (client secret of D365Connection {connection}) not found \
         among the Secrets labelled {CREDENTIALS_SELECTOR}, the only ones the operator reads; \
         create it with that label, or label it: \
         kubectl label secret -n {namespace} {name} {CREDENTIALS_SELECTOR}"
    )]
    SecretNotFound {
        namespace: String,
        name: String,
        connection: String,
    },
    /// Read, but without the label (removed since it was cached): refused.
    #[error(
        "Secret {namespace}/{name} (client secret of D365Connection {connection}) is not \
         labelled {CREDENTIALS_SELECTOR}, so the operator does not use it; label it: \
         kubectl label secret -n {namespace} {name} {CREDENTIALS_SELECTOR}"
    )]
    SecretNotLabelled {
        namespace: String,
        name: String,
        connection: String,
    },
    #[error(
        "Secret {namespace}/{name} has no key {key} (client secret of D365Connection {connection})"
    )]
    SecretKeyMissing {
        namespace: String,
        name: String,
        key: String,
        connection: String,
    },
    /// The bytes are not UTF-8 (e.g. base64-encoded twice, or a binary
    /// file): no client secret can be.
    #[error(
        "Secret {namespace}/{name} key {key} is not UTF-8 text (client secret of D365Connection {connection}): {source}"
    )]
    SecretNotUtf8 {
        namespace: String,
        name: String,
        key: String,
        connection: String,
        #[source]
        source: std::str::Utf8Error,
    },
    /// The API server did not give the Secret: transient (unavailable,
    /// overloaded, timed out) unless it refused the operator (401/403).
    #[error("reading Secret {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ResolveError {
    /// A reason that needs a human is Stalled; an API server that failed to
    /// answer is Unavailable (Reconciling, retried with backoff), since
    /// parking every order of the connection for the long recheck over one
    /// blip would be wrong.
    pub fn reason(&self) -> Reason {
        match self {
            Self::ConnectionNotFound { .. } | Self::InvalidConnection { .. } => {
                Reason::ConnectionNotReady
            }
            Self::Kube { source, .. } if refused(source) => Reason::ConnectionNotReady,
            Self::Kube { .. } => Reason::Unavailable,
            Self::SecretNotFound { .. }
            | Self::SecretNotLabelled { .. }
            | Self::SecretKeyMissing { .. }
            | Self::SecretNotUtf8 { .. } => Reason::SecretNotFound,
        }
    }
}

/// The API server refused the operator itself (credentials, RBAC): waiting
/// will not help.
fn refused(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if matches!(status.code, 401 | 403))
}

/// Where a Secret's data comes from: the API server in the operator (one GET
/// per client build), a map in tests. What it returns is used only if it
/// carries the credentials label.
pub trait SecretSource: Send + Sync {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>>;
}

impl SecretSource for kube::Client {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, kube::Error>> {
        let api: Api<Secret> = Api::namespaced(self.clone(), namespace);
        Box::pin(async move { api.get_opt(name).await })
    }
}

/// What a cached client was built from: the connection (uid, generation)
/// and its Secret's resourceVersion.
type Fingerprint = (String, Option<i64>, Option<String>);

/// The connection and Secret caches and the clients built from them.
pub struct Connections {
    pub connections: Store<D365Connection>,
    /// Metadata only: a Secret's data is read when a client is built.
    pub secrets: Store<PartialObjectMeta<Secret>>,
    source: Arc<dyn SecretSource>,
    observer: Arc<dyn RequestObserver>,
    /// Named in every client's User-Agent; its fence gates every write.
    writer: Writer,
    /// Where clients may send the secret and tokens.
    destinations: Destinations,
    /// The largest D365 answer (data or `$batch`) a client reads.
    max_answer_bytes: usize,
    cache: Mutex<HashMap<(String, String), (Fingerprint, Resolved)>>,
    /// Serialises cache misses, so a burst of orders on a cold connection
    /// builds one client (one token cache, one limiter), not one each.
    build: tokio::sync::Mutex<()>,
}

impl Connections {
    pub fn new(
        connections: Store<D365Connection>,
        secrets: Store<PartialObjectMeta<Secret>>,
        source: Arc<dyn SecretSource>,
        observer: Arc<dyn RequestObserver>,
    ) -> Self {
        Self {
            connections,
            secrets,
            source,
            observer,
            writer: Writer::default(),
            destinations: Destinations::default(),
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
            cache: Mutex::new(HashMap::new()),
            build: tokio::sync::Mutex::new(()),
        }
    }

    /// Clients built from now on write as `writer` (the default: unnamed,
    /// never fenced).
    pub fn with_writer(self, writer: Writer) -> Self {
        Self { writer, ..self }
    }

    /// Clients built from now on follow `destinations` (the default:
    /// Entra's hosts, plain HTTP only on loopback).
    pub fn with_destinations(self, destinations: Destinations) -> Self {
        Self {
            destinations,
            ..self
        }
    }

    /// Clients built from now on read D365 answers up to `max_answer_bytes`
    /// (the default: 16 MiB).
    pub fn with_answer_limit(self, max_answer_bytes: usize) -> Self {
        Self {
            max_answer_bytes,
            ..self
        }
    }

    /// The connection `name` in `namespace`, from the cache.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<D365Connection>> {
        self.connections
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// The resourceVersion of Secret `name` in `namespace`, from the cache.
    pub fn secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        self.secrets
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|s| s.resource_version())
    }

    /// The client for connection `name` in `namespace`, from the stores;
    /// the Secret's data is read (one GET) only when the connection or the
    /// Secret's resourceVersion changed since the client was built.
    pub async fn resolve(&self, namespace: &str, name: &str) -> Result<Resolved, ResolveError> {
        let conn = self
            .get(namespace, name)
            .ok_or_else(|| ResolveError::ConnectionNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let at = Located {
            namespace,
            secret: &conn.spec.auth.client_secret_ref.name,
            connection: format!("{namespace}/{name}"),
        };
        let secret_meta = self
            .secrets
            .get(&ObjectRef::new(at.secret).within(namespace))
            .ok_or_else(|| at.secret_not_found())?;
        let fingerprint = (
            conn.uid().unwrap_or_default(),
            conn.metadata.generation,
            secret_meta.resource_version(),
        );
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(resolved) = self.cached(&key, &fingerprint) {
            return Ok(resolved);
        }
        let _building = self.build.lock().await;
        if let Some(resolved) = self.cached(&key, &fingerprint) {
            return Ok(resolved);
        }
        let resolved = self.build_from_secret(&conn, &at).await?;
        lock(&self.cache).insert(key, (fingerprint, resolved.clone()));
        Ok(resolved)
    }

    fn cached(&self, key: &(String, String), fingerprint: &Fingerprint) -> Option<Resolved> {
        lock(&self.cache)
            .get(key)
            .filter(|(fp, _)| fp == fingerprint)
            .map(|(_, r)| r.clone())
    }

    /// Reads the Secret's data and builds a client.
    async fn build_from_secret(
        &self,
        conn: &D365Connection,
        at: &Located<'_>,
    ) -> Result<Resolved, ResolveError> {
        let secret_ref = &conn.spec.auth.client_secret_ref;
        let secret = self
            .source
            .secret(at.namespace, at.secret)
            .await
            .map_err(|source| ResolveError::Kube {
                namespace: at.namespace.into(),
                name: at.secret.into(),
                source,
            })?
            .ok_or_else(|| at.secret_not_found())?;
        if !labelled(&secret) {
            return Err(ResolveError::SecretNotLabelled {
                namespace: at.namespace.into(),
                name: at.secret.into(),
                connection: at.connection.clone(),
            });
        }
        let key = || secret_ref.key.clone();
        let value = secret_value(&secret, &secret_ref.key)
            .map_err(|source| ResolveError::SecretNotUtf8 {
                namespace: at.namespace.into(),
                name: at.secret.into(),
                key: key(),
                connection: at.connection.clone(),
                source,
            })?
            .ok_or_else(|| ResolveError::SecretKeyMissing {
                namespace: at.namespace.into(),
                name: at.secret.into(),
                key: key(),
                connection: at.connection.clone(),
            })?;
        self.build(conn, value)
            .map_err(|message| ResolveError::InvalidConnection {
                connection: at.connection.clone(),
                message,
            })
    }

    fn build(&self, conn: &D365Connection, secret: SecretString) -> Result<Resolved, String> {
        let spec = &conn.spec;
        let url =
            |s: &str, what: &str| url::Url::parse(s).map_err(|e| format!("{what} {s:?}: {e}"));
        let environment_url = url(&spec.url, "spec.url")?;
        let authority_url = url(
            spec.auth
                .authority_url
                .as_deref()
                .unwrap_or("https://login.microsoftonline.com"),
            "spec.auth.authorityUrl",
        )?;
        let mut settings = ConnectionSettings::new(
            environment_url,
            authority_url,
            spec.auth.tenant_id.clone(),
            spec.auth.client_id.clone(),
            secret,
        );
        settings.entity_set = spec.entity_set.clone();
        settings.scope = spec.auth.scope.clone();
        settings.max_requests_per_second = spec.max_requests_per_second;
        settings.max_concurrent_requests = spec.max_concurrent_requests;
        settings.request_timeout = Duration::from_secs(spec.request_timeout_seconds.into());
        settings.batch = spec.batch.as_ref().map(|b| BatchSettings {
            max_operations: b.max_operations as usize,
            window: Duration::from_millis(b.window_milliseconds.into()),
        });
        settings.writer = self.writer.clone();
        settings.destinations = self.destinations.clone();
        settings.max_answer_bytes = self.max_answer_bytes;
        let client = D365Client::new(settings, self.observer.clone()).map_err(|e| e.to_string())?;
        let rules = OrderRules {
            status_field: spec.fields.sales_status.clone(),
            date_field: spec.fields.delivery_date.clone(),
            final_statuses: spec.final_statuses.clone(),
        };
        Ok(Resolved {
            admission: Arc::new(Admission::for_settings(client.settings())),
            client,
            rules: Arc::new(rules),
        })
    }

    /// Drops the client of a deleted connection.
    pub fn forget(&self, namespace: &str, name: &str) {
        lock(&self.cache).remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Drops the clients of connections the store no longer holds (or
    /// holds as another object), e.g. after a Delete missed in a watch gap.
    pub fn prune(&self) {
        lock(&self.cache).retain(|(namespace, name), ((uid, ..), _)| {
            self.get(namespace, name)
                .is_some_and(|c| c.uid().unwrap_or_default() == *uid)
        });
    }

    /// How many clients are cached.
    #[cfg(test)]
    pub fn cached_clients(&self) -> usize {
        lock(&self.cache).len()
    }
}

/// Where a connection's Secret is, for error messages.
struct Located<'a> {
    namespace: &'a str,
    secret: &'a str,
    connection: String,
}

impl Located<'_> {
    fn secret_not_found(&self) -> ResolveError {
        ResolveError::SecretNotFound {
            namespace: self.namespace.into(),
            name: self.secret.into(),
            connection: self.connection.clone(),
        }
    }
}

/// Whether the Secret opted in to being read as credentials.
fn labelled(secret: &Secret) -> bool {
    secret.labels().get(CREDENTIALS_LABEL).map(String::as_str) == Some("true")
}

/// A Secret's value (trimmed: a trailing newline from `kubectl create
/// secret --from-file` is never part of a client secret).
/// `Err` only for bytes that are not UTF-8 (the error holds no bytes).
fn secret_value(secret: &Secret, key: &str) -> Result<Option<SecretString>, std::str::Utf8Error> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        let text = std::str::from_utf8(&bytes.0)?;
        return Ok(Some(SecretString::from(text.trim().to_owned())));
    }
    let text = secret.string_data.as_ref().and_then(|d| d.get(key));
    Ok(text.map(|t| SecretString::from(t.trim().to_owned())))
}

#[cfg(test)]
#[path = "connections_tests.rs"]
mod tests;
