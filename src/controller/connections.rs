//! D365Connection -> D365 client. One client (token cache, limiter) per
//! connection, shared by all its orders, rebuilt only when the connection's
//! spec or its Secret changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::admission::Admission;
use super::capabilities::KnownFields;
use super::credentials::{Located, read_credential};
pub use super::credentials::{ResolveError, SecretSource};
use super::sync::OrderRules;
use super::sync::Resolved;
use crate::api::D365Connection;
use crate::d365::{
    BatchSettings, ConnectionSettings, Credential, D365Client, DEFAULT_MAX_ANSWER_BYTES,
    Destinations, RequestObserver, Writer,
};
use crate::locks::lock;

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
    /// The operator's projected ServiceAccount token, for connections that
    /// use workload identity.
    token_file: Option<PathBuf>,
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
            token_file: None,
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

    /// Connections using workload identity present the token in
    /// `token_file` (the default: none, and such connections are refused).
    pub fn with_workload_identity(self, token_file: Option<PathBuf>) -> Self {
        Self { token_file, ..self }
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
        let secret = conn.spec.auth.credentials_secret();
        let at = Located {
            namespace,
            secret: secret.unwrap_or_default(),
            connection: format!("{namespace}/{name}"),
        };
        let secret_version = match secret {
            Some(secret) => self
                .secrets
                .get(&ObjectRef::new(secret).within(namespace))
                .ok_or_else(|| at.secret_not_found())?
                .resource_version(),
            None => None,
        };
        let fingerprint = (
            conn.uid().unwrap_or_default(),
            conn.metadata.generation,
            secret_version,
        );
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(resolved) = self.cached(&key, &fingerprint) {
            return Ok(resolved);
        }
        let _building = self.build.lock().await;
        if let Some(resolved) = self.cached(&key, &fingerprint) {
            return Ok(resolved);
        }
        let token_file = self.token_file.as_deref();
        let credential = read_credential(&*self.source, &conn.spec.auth, &at, token_file).await?;
        let resolved =
            self.build(&conn, credential)
                .map_err(|message| ResolveError::InvalidConnection {
                    connection: at.connection.clone(),
                    message,
                })?;
        lock(&self.cache).insert(key, (fingerprint, resolved.clone()));
        Ok(resolved)
    }

    /// The client for `conn` as given: its Secret read now (one GET, the
    /// same label rule), nothing cached and no store consulted. For
    /// one-shot commands (`export`) that run without the watches.
    pub async fn resolve_now(&self, conn: &D365Connection) -> Result<Resolved, ResolveError> {
        let namespace = conn.namespace().unwrap_or_default();
        let at = Located {
            namespace: &namespace,
            secret: conn.spec.auth.credentials_secret().unwrap_or_default(),
            connection: format!("{namespace}/{}", conn.name_any()),
        };
        let token_file = self.token_file.as_deref();
        let credential = read_credential(&*self.source, &conn.spec.auth, &at, token_file).await?;
        self.build(conn, credential)
            .map_err(|message| ResolveError::InvalidConnection {
                connection: at.connection,
                message,
            })
    }

    fn cached(&self, key: &(String, String), fingerprint: &Fingerprint) -> Option<Resolved> {
        lock(&self.cache)
            .get(key)
            .filter(|(fp, _)| fp == fingerprint)
            .map(|(_, r)| r.clone())
    }

    fn build(&self, conn: &D365Connection, credential: Credential) -> Result<Resolved, String> {
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
        let mut settings = ConnectionSettings::with_credential(
            environment_url,
            authority_url,
            spec.auth.tenant_id.clone(),
            spec.auth.client_id.clone(),
            credential,
        );
        settings.entity_set = spec.entity_set.clone();
        settings.scope = spec.auth.scope.clone();
        settings.max_requests_per_second = spec.max_requests_per_second;
        settings.max_concurrent_requests = spec.max_concurrent_requests;
        settings.adaptive_concurrency = spec.adaptive_concurrency;
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
            capabilities: KnownFields::pending(),
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

#[cfg(test)]
#[path = "connections_tests.rs"]
mod tests;
