//! D365Connection -> D365 client. One client (token cache, limiter) per
//! connection, shared by all its orders, rebuilt only when the connection's
//! spec or its Secret changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use secrecy::SecretString;

use super::context::Context;
use super::sync::OrderRules;
use crate::api::{D365Connection, Reason};
use crate::d365::{BatchSettings, ConnectionSettings, D365Client, RequestObserver};

/// Why an order's connection could not be resolved; each is a condition.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("D365Connection {namespace}/{name} not found")]
    ConnectionNotFound { namespace: String, name: String },
    #[error("D365Connection {connection} is invalid: {message}")]
    InvalidConnection { connection: String, message: String },
    #[error("Secret {namespace}/{name} (client secret of D365Connection {connection}) not found")]
    SecretNotFound {
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
    #[error("reading Secret {namespace}/{name}: {source}")]
    Kube {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ResolveError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::ConnectionNotFound { .. }
            | Self::InvalidConnection { .. }
            | Self::Kube { .. } => Reason::ConnectionNotReady,
            Self::SecretNotFound { .. } | Self::SecretKeyMissing { .. } => Reason::SecretNotFound,
        }
    }
}

/// A ready-to-use connection.
#[derive(Clone)]
pub struct Resolved {
    pub client: D365Client,
    pub rules: Arc<OrderRules>,
}

type Fingerprint = (String, Option<i64>, Option<String>);

/// Cache of clients by connection.
pub struct Connections {
    observer: Arc<dyn RequestObserver>,
    cache: Mutex<HashMap<(String, String), (Fingerprint, Resolved)>>,
    /// Serialises cache misses, so a burst of orders on a cold connection
    /// builds one client (one token cache, one limiter), not one each.
    build: tokio::sync::Mutex<()>,
}

impl Connections {
    pub fn new(observer: Arc<dyn RequestObserver>) -> Self {
        Self {
            observer,
            cache: Mutex::new(HashMap::new()),
            build: tokio::sync::Mutex::new(()),
        }
    }

    /// The client for connection `name` in `namespace`, from the stores;
    /// the Secret's data is read (one GET) only when the connection's
    /// generation or the Secret's resourceVersion changed.
    pub async fn resolve(
        ctx: &Context,
        namespace: &str,
        name: &str,
    ) -> Result<Resolved, ResolveError> {
        let conn = ctx
            .connections
            .get(&ObjectRef::new(name).within(namespace))
            .ok_or_else(|| ResolveError::ConnectionNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })?;
        let secret_ref = &conn.spec.auth.client_secret_ref;
        let connection = format!("{namespace}/{name}");
        let not_found = || ResolveError::SecretNotFound {
            namespace: namespace.into(),
            name: secret_ref.name.clone(),
            connection: connection.clone(),
        };
        let secret_meta = ctx
            .secrets
            .get(&ObjectRef::new(&secret_ref.name).within(namespace))
            .ok_or_else(not_found)?;
        let fingerprint = (
            conn.uid().unwrap_or_default(),
            conn.metadata.generation,
            secret_meta.resource_version(),
        );
        let key = (namespace.to_owned(), name.to_owned());
        let cached = || {
            let cache = ctx.d365.cache.lock().unwrap();
            cache
                .get(&key)
                .filter(|(fp, _)| *fp == fingerprint)
                .map(|(_, r)| r.clone())
        };
        if let Some(resolved) = cached() {
            return Ok(resolved);
        }
        let _building = ctx.d365.build.lock().await;
        if let Some(resolved) = cached() {
            return Ok(resolved);
        }
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
        let secret = secrets
            .get_opt(&secret_ref.name)
            .await
            .map_err(|source| ResolveError::Kube {
                namespace: namespace.into(),
                name: secret_ref.name.clone(),
                source,
            })?
            .ok_or_else(not_found)?;
        let value = secret_value(&secret, &secret_ref.key).ok_or_else(|| {
            ResolveError::SecretKeyMissing {
                namespace: namespace.into(),
                name: secret_ref.name.clone(),
                key: secret_ref.key.clone(),
                connection: connection.clone(),
            }
        })?;
        let resolved =
            ctx.d365
                .build(&conn, value)
                .map_err(|message| ResolveError::InvalidConnection {
                    connection: connection.clone(),
                    message,
                })?;
        ctx.d365
            .cache
            .lock()
            .unwrap()
            .insert(key, (fingerprint, resolved.clone()));
        Ok(resolved)
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
        let client = D365Client::new(settings, self.observer.clone()).map_err(|e| e.to_string())?;
        let rules = OrderRules {
            status_field: spec.fields.sales_status.clone(),
            date_field: spec.fields.delivery_date.clone(),
            final_statuses: spec.final_statuses.clone(),
        };
        Ok(Resolved {
            client,
            rules: Arc::new(rules),
        })
    }

    /// Drops the client of a deleted connection.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.cache
            .lock()
            .unwrap()
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

/// A Secret's value (trimmed: a trailing newline from `kubectl create
/// secret --from-file` is never part of a client secret).
fn secret_value(secret: &Secret, key: &str) -> Option<SecretString> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        let text = String::from_utf8(bytes.0.clone()).ok()?;
        return Some(SecretString::from(text.trim().to_owned()));
    }
    let text = secret.string_data.as_ref()?.get(key)?;
    Some(SecretString::from(text.trim().to_owned()))
}
