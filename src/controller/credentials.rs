//! Reading a connection's credential: the client secret or certificate
//! from its labelled Secret, or the operator's workload identity; and every
//! way that can fail, each a condition that says what to fix.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use secrecy::SecretString;

use crate::api::{CREDENTIALS_LABEL, CREDENTIALS_SELECTOR, ConnectionAuth, Reason};
use crate::d365::{CertificateError, ClientCertificate, Credential};

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
        "Secret {namespace}/{name} (credentials of D365Connection {connection}) not found \
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
        "Secret {namespace}/{name} (credentials of D365Connection {connection}) is not \
         labelled {CREDENTIALS_SELECTOR}, so the operator does not use it; label it: \
         kubectl label secret -n {namespace} {name} {CREDENTIALS_SELECTOR}"
    )]
    SecretNotLabelled {
        namespace: String,
        name: String,
        connection: String,
    },
    #[error(
        "Secret {namespace}/{name} has no key {key} (credentials of D365Connection {connection})"
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
        "Secret {namespace}/{name} key {key} is not UTF-8 text (credentials of D365Connection {connection}): {source}"
    )]
    SecretNotUtf8 {
        namespace: String,
        name: String,
        key: String,
        connection: String,
        #[source]
        source: std::str::Utf8Error,
    },
    /// The certificate or key is unusable (not PEM, not RSA, not a pair).
    #[error(
        "Secret {namespace}/{name} does not hold a usable client certificate \
         (D365Connection {connection}): {source}"
    )]
    CertificateInvalid {
        namespace: String,
        name: String,
        connection: String,
        /// Boxed: webpki's error is large, and every resolve returns this type.
        #[source]
        source: Box<CertificateError>,
    },
    /// The connection asks for workload identity, but the operator has no
    /// projected token to present.
    #[error(
        "D365Connection {connection} uses workload identity, but the operator has no \
         ServiceAccount token file: install the chart with workloadIdentity.enabled=true, \
         or run the operator with --workload-identity-token-file"
    )]
    WorkloadIdentityUnavailable { connection: String },
    /// None of the three credentials is set (the CRD's rule forbids it;
    /// an object stored before that rule may still have none).
    #[error(
        "D365Connection {connection} sets no credential: set one of \
         spec.auth.clientSecretRef, clientCertificateRef and workloadIdentity"
    )]
    NoCredential { connection: String },
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
            Self::ConnectionNotFound { .. }
            | Self::InvalidConnection { .. }
            | Self::CertificateInvalid { .. }
            | Self::WorkloadIdentityUnavailable { .. }
            | Self::NoCredential { .. } => Reason::ConnectionNotReady,
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

/// The credential `auth` names. A Secret is read (one GET) and used only
/// if it carries the credentials label; `token_file` is the operator's
/// projected ServiceAccount token, if it has one.
pub(super) async fn read_credential(
    source: &dyn SecretSource,
    auth: &ConnectionAuth,
    at: &Located<'_>,
    token_file: Option<&Path>,
) -> Result<Credential, ResolveError> {
    if auth.workload_identity.is_some() {
        return token_file
            .map(|path| Credential::WorkloadIdentity(path.to_owned()))
            .ok_or_else(|| ResolveError::WorkloadIdentityUnavailable {
                connection: at.connection.clone(),
            });
    }
    if let Some(secret_ref) = &auth.client_secret_ref {
        let secret = read_labelled(source, at).await?;
        let value = secret_value(&secret, &secret_ref.key)
            .map_err(|source| at.not_utf8(&secret_ref.key, source))?
            .ok_or_else(|| at.key_missing(&secret_ref.key))?;
        return Ok(Credential::ClientSecret(value));
    }
    if let Some(cert_ref) = &auth.client_certificate_ref {
        let secret = read_labelled(source, at).await?;
        let bytes = |key: &str| secret_bytes(&secret, key).ok_or_else(|| at.key_missing(key));
        let certificate = bytes(&cert_ref.certificate_key)?;
        let private_key = bytes(&cert_ref.private_key_key)?;
        let parsed = ClientCertificate::from_pem(&certificate, &private_key).map_err(|source| {
            ResolveError::CertificateInvalid {
                namespace: at.namespace.into(),
                name: at.secret.into(),
                connection: at.connection.clone(),
                source: Box::new(source),
            }
        })?;
        return Ok(Credential::Certificate(Arc::new(parsed)));
    }
    Err(ResolveError::NoCredential {
        connection: at.connection.clone(),
    })
}

/// The Secret `at` names, if it exists and carries the credentials label.
async fn read_labelled(
    source: &dyn SecretSource,
    at: &Located<'_>,
) -> Result<Secret, ResolveError> {
    let secret = source
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
    Ok(secret)
}

/// Where a connection's Secret is, for error messages.
pub(super) struct Located<'a> {
    pub(super) namespace: &'a str,
    pub(super) secret: &'a str,
    pub(super) connection: String,
}

impl Located<'_> {
    pub(super) fn secret_not_found(&self) -> ResolveError {
        ResolveError::SecretNotFound {
            namespace: self.namespace.into(),
            name: self.secret.into(),
            connection: self.connection.clone(),
        }
    }

    fn key_missing(&self, key: &str) -> ResolveError {
        ResolveError::SecretKeyMissing {
            namespace: self.namespace.into(),
            name: self.secret.into(),
            key: key.into(),
            connection: self.connection.clone(),
        }
    }

    fn not_utf8(&self, key: &str, source: std::str::Utf8Error) -> ResolveError {
        ResolveError::SecretNotUtf8 {
            namespace: self.namespace.into(),
            name: self.secret.into(),
            key: key.into(),
            connection: self.connection.clone(),
            source,
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
pub(super) fn secret_value(
    secret: &Secret,
    key: &str,
) -> Result<Option<SecretString>, std::str::Utf8Error> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        let text = std::str::from_utf8(&bytes.0)?;
        return Ok(Some(SecretString::from(text.trim().to_owned())));
    }
    let text = secret.string_data.as_ref().and_then(|d| d.get(key));
    Ok(text.map(|t| SecretString::from(t.trim().to_owned())))
}

/// A Secret's raw bytes under `key` (`data`, else `stringData`).
fn secret_bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(bytes.0.clone());
    }
    let text = secret.string_data.as_ref().and_then(|d| d.get(key));
    text.map(|t| t.clone().into_bytes())
}
