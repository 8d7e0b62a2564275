//! Certificate credentials [doc: Microsoft identity platform application
//! authentication certificate credentials]: the client signs a JWT with
//! its private key; the header names the registered certificate by
//! thumbprint (`x5t` = SHA-1 of the DER with RS256, `x5t#S256` = SHA-256
//! with PS256); `aud` is the token endpoint, `iss` = `sub` = client id.
//! Only the certificate's public key and validity are used, as Entra does:
//! no chain, no trust anchor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::signature::{self, UnparsedPublicKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;
use x509_parser::error::X509Error;
use x509_parser::public_key::PublicKey;

use crate::assertion::AadError;
use crate::config::RegisteredCertificate;
use crate::jwt::Jwt;

#[derive(Debug, Error)]
pub enum CertError {
    #[error("certificate of client '{client_id}' is not a PEM certificate")]
    Pem {
        client_id: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("certificate of client '{client_id}' is not valid X.509")]
    Der {
        client_id: String,
        #[source]
        source: x509_parser::nom::Err<X509Error>,
    },
    #[error("certificate of client '{client_id}' does not hold an RSA key")]
    NotRsa { client_id: String },
}

/// A registered certificate, reduced to what verification needs.
pub struct ClientCert {
    client_id: String,
    sha1: String,
    sha256: String,
    /// PKCS#1 `RSAPublicKey` DER, as ring reads it.
    rsa_key: Vec<u8>,
    not_after: i64,
}

impl ClientCert {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn load(reg: &RegisteredCertificate) -> Result<ClientCert, CertError> {
        let client_id = reg.client_id.clone();
        let der =
            CertificateDer::from_pem_slice(reg.certificate_pem.as_bytes()).map_err(|source| {
                CertError::Pem {
                    client_id: client_id.clone(),
                    source,
                }
            })?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|source| CertError::Der {
                client_id: client_id.clone(),
                source,
            })?;
        let spki = cert.public_key();
        if !matches!(spki.parsed(), Ok(PublicKey::RSA(_))) {
            return Err(CertError::NotRsa { client_id });
        }
        let thumb = |alg| URL_SAFE_NO_PAD.encode(digest::digest(alg, &der));
        Ok(ClientCert {
            sha1: thumb(&digest::SHA1_FOR_LEGACY_USE_ONLY),
            sha256: thumb(&digest::SHA256),
            rsa_key: spki.subject_public_key.data.to_vec(),
            not_after: cert.validity().not_after.timestamp(),
            client_id,
        })
    }
}

/// Verifies a certificate assertion of `client_id` presented at one of
/// `endpoints` (token endpoint URLs, compared case-insensitively).
pub fn verify(
    certs: &[ClientCert],
    client_id: &str,
    jwt: &Jwt<'_>,
    endpoints: &[String],
    now: f64,
) -> Result<(), AadError> {
    let (thumb, by_sha256) = match (&jwt.header.x5t_s256, &jwt.header.x5t) {
        (Some(t), _) => (t.as_str(), true),
        (None, Some(t)) => (t.as_str(), false),
        (None, None) => return Err(AadError::malformed()),
    };
    let cert = certs
        .iter()
        .filter(|c| c.client_id == client_id)
        .find(|c| if by_sha256 { c.sha256 == thumb } else { c.sha1 == thumb })
        .ok_or_else(|| {
            AadError::invalid_client(format!(
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}']"
            ))
        })?;
    let alg: &dyn signature::VerificationAlgorithm = match jwt.header.alg.as_str() {
        "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return Err(invalid_signature(thumb)),
    };
    // ring's error says nothing more than "did not verify".
    let key = UnparsedPublicKey::new(alg, &cert.rsa_key);
    if key.verify(jwt.signing_input, &jwt.signature).is_err() {
        return Err(invalid_signature(thumb));
    }
    if (cert.not_after as f64) < now {
        return Err(AadError::invalid_client(format!(
            "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumb}']"
        )));
    }
    check_claims(jwt, client_id, endpoints, now)
}

fn invalid_signature(thumb: &str) -> AadError {
    AadError::invalid_client(format!(
        "AADSTS700027: Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumb}']"
    ))
}

/// `iss` = `sub` = client id, one `aud` naming the endpoint called [obs:
/// AADSTS5002741 for several], a `jti`, and the validity window.
fn check_claims(
    jwt: &Jwt<'_>,
    client_id: &str,
    endpoints: &[String],
    now: f64,
) -> Result<(), AadError> {
    let c = &jwt.claims;
    if c.iss != c.sub {
        return Err(AadError::invalid_client(
            "AADSTS50048: Subject mismatches Issuer claim in the client assertion.".into(),
        ));
    }
    if c.sub != client_id {
        return Err(AadError::invalid_client(
            "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    let aud = c.aud.values();
    if aud.len() > 1 {
        return Err(AadError::invalid_client(format!(
            "AADSTS5002741: Number of audience values in the provided client credential exceed maximum allowed. {} audience values provided, maximum allowed is 1.",
            aud.len()
        )));
    }
    if !aud
        .iter()
        .any(|a| endpoints.iter().any(|e| e.eq_ignore_ascii_case(a)))
    {
        return Err(AadError::invalid_client(
            "AADSTS50012: Client assertion audience claim does not match Realm issuer.".into(),
        ));
    }
    if c.jti.as_deref().is_none_or(str::is_empty) {
        return Err(AadError::malformed());
    }
    c.check_times(now).map_err(AadError::time)
}
