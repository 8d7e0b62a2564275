//! How the operator proves who it is to Entra ID: a client secret, a
//! certificate (an assertion signed with its private key), or workload
//! identity (the pod's projected ServiceAccount token, exchanged as a
//! federated assertion). The last two keep no secret in the cluster that
//! could be read and replayed from elsewhere: the private key never leaves
//! the operator, and a ServiceAccount token lives an hour at most.
//!
//! Assertions are made fresh for every token request and never logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::D365Error;

/// The `client_assertion_type` of both assertion kinds [doc: RFC 7523].
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a certificate assertion: long enough for clock skew and a
/// slow token endpoint, short enough to be useless if intercepted.
const ASSERTION_LIFETIME_SECS: i64 = 600;
/// A projected ServiceAccount token is 1–2 KiB; anything much larger is
/// not one, and is not read into memory.
const MAX_FEDERATED_TOKEN_BYTES: u64 = 64 << 10;

/// The credential of one connection.
#[derive(Clone)]
pub enum Credential {
    /// Sent as `client_secret`.
    ClientSecret(SecretString),
    /// Proven by an assertion signed with the certificate's key.
    Certificate(Arc<ClientCertificate>),
    /// The projected ServiceAccount token in this file, read at every token
    /// request (the kubelet rotates it), sent as the assertion.
    WorkloadIdentity(PathBuf),
}

/// Hand-written: names the kind, never the material.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret(_) => f.write_str("ClientSecret([REDACTED])"),
            Self::Certificate(c) => write!(f, "Certificate(x5t={})", c.thumbprint),
            Self::WorkloadIdentity(path) => write!(f, "WorkloadIdentity({})", path.display()),
        }
    }
}

/// What a token request carries to prove the client: form fields, and the
/// secret values among them that an answer must never echo.
pub(crate) struct ClientProof {
    pub(crate) fields: Vec<(&'static str, SecretString)>,
}

impl ClientProof {
    /// The values to scrub from anything the token endpoint answers.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(name, _)| *name != "client_assertion_type")
            .map(|(_, v)| v.expose_secret())
    }
}

impl Credential {
    /// The proof for one token request to `endpoint` by `client_id`.
    pub(crate) async fn proof(
        &self,
        client_id: &str,
        endpoint: &str,
    ) -> Result<ClientProof, D365Error> {
        let assertion = |value: SecretString| ClientProof {
            fields: vec![
                ("client_assertion_type", SecretString::from(JWT_BEARER)),
                ("client_assertion", value),
            ],
        };
        match self {
            Self::ClientSecret(secret) => Ok(ClientProof {
                fields: vec![("client_secret", secret.clone())],
            }),
            Self::Certificate(cert) => Ok(assertion(cert.assertion(client_id, endpoint)?)),
            Self::WorkloadIdentity(path) => Ok(assertion(read_federated_token(path).await?)),
        }
    }

    /// The long-lived secret an answer might echo: the client secret only
    /// (assertions are per request and scrubbed where they are sent).
    pub(crate) fn static_secret(&self) -> Option<&str> {
        match self {
            Self::ClientSecret(secret) => Some(secret.expose_secret()),
            Self::Certificate(_) | Self::WorkloadIdentity(_) => None,
        }
    }
}

/// Why a certificate credential cannot be used; the messages name what to
/// fix and never quote the key.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate is not a PEM certificate: {0}")]
    Certificate(#[source] rustls_pki_types::pem::Error),
    #[error("the private key is not a PEM private key (PKCS#1 or PKCS#8): {0}")]
    PrivateKey(#[source] rustls_pki_types::pem::Error),
    #[error("the private key is not an RSA key; Entra ID certificate credentials are RSA")]
    NotRsaKind,
    #[error("the private key is not an RSA key Entra ID accepts (2048 to 8192 bits): {0}")]
    NotRsa(#[source] ring::error::KeyRejected),
    #[error("the certificate cannot be parsed: {0}")]
    Unparsable(#[source] webpki::Error),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(#[source] webpki::Error),
    #[error("signing failed")]
    Signing,
}

/// An RSA key and its certificate's SHA-1 thumbprint, which the assertion
/// names (`x5t`) so Entra knows which registered certificate to check it
/// against.
pub struct ClientCertificate {
    key: RsaKeyPair,
    thumbprint: String,
}

impl ClientCertificate {
    /// From PEM text as a `kubernetes.io/tls` Secret holds it (`tls.crt`:
    /// the certificate first, maybe followed by its chain; `tls.key`:
    /// PKCS#8, or PKCS#1 as cert-manager writes RSA keys). Refuses a key
    /// that does not match the certificate, which would otherwise surface
    /// only as Entra's vague "invalid signature".
    pub fn from_pem(certificate: &[u8], private_key: &[u8]) -> Result<Self, CertificateError> {
        let cert =
            CertificateDer::from_pem_slice(certificate).map_err(CertificateError::Certificate)?;
        let key =
            PrivateKeyDer::from_pem_slice(private_key).map_err(CertificateError::PrivateKey)?;
        let key = match &key {
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            _ => return Err(CertificateError::NotRsaKind),
        }
        .map_err(CertificateError::NotRsa)?;
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert);
        let credential = Self {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        };
        credential.check_matches(&cert)?;
        Ok(credential)
    }

    /// The base64url SHA-1 thumbprint (`x5t`), as Entra lists it.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    fn check_matches(&self, cert: &CertificateDer<'_>) -> Result<(), CertificateError> {
        const PROBE: &[u8] = b"sales-order-operator key check";
        let signature = self.sign(PROBE)?;
        let parsed = webpki::EndEntityCert::try_from(cert).map_err(CertificateError::Unparsable)?;
        parsed
            .verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, PROBE, &signature)
            .map_err(CertificateError::Mismatch)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CertificateError> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_unspecified| CertificateError::Signing)?;
        Ok(signature)
    }

    /// A signed assertion for one token request [doc: Microsoft identity
    /// platform certificate credentials]: RS256, `x5t`, audience the token
    /// endpoint, issuer and subject the client id, a unique `jti`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        endpoint: &str,
    ) -> Result<SecretString, D365Error> {
        let now = jiff::Timestamp::now().as_second();
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_unspecified| D365Error::config("no randomness for the assertion id"))?;
        let header = json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint});
        let claims = json!({
            "aud": endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .sign(signing_input.as_bytes())
            .map_err(|e| D365Error::config("signing the client assertion").caused_by(e))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// The current projected token, bounded and trimmed. A missing or empty
/// file is the deployment's fault (no projected volume), named as such.
async fn read_federated_token(path: &Path) -> Result<SecretString, D365Error> {
    let failed = |why: String| {
        D365Error::config(format!(
            "workload identity token file {}: {why}",
            path.display()
        ))
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| failed("cannot be opened".into()).caused_by(e))?;
    let mut text = String::new();
    file.take(MAX_FEDERATED_TOKEN_BYTES + 1)
        .read_to_string(&mut text)
        .await
        .map_err(|e| failed("cannot be read as text".into()).caused_by(e))?;
    if text.len() as u64 > MAX_FEDERATED_TOKEN_BYTES {
        return Err(failed(format!(
            "larger than {MAX_FEDERATED_TOKEN_BYTES} bytes, not a ServiceAccount token"
        )));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(failed("is empty".into()));
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
#[path = "credential_tests.rs"]
mod tests;
