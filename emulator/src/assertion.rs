//! Client assertions at the token endpoint [doc: client credentials with
//! a certificate or a federated credential]: `client_assertion_type =
//! urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and a signed JWT
//! instead of a `client_secret`. A header naming a certificate thumbprint
//! (`x5t` / `x5t#S256`) is a certificate credential (`certcred`); any other
//! is a federated credential, e.g. a Kubernetes ServiceAccount token,
//! verified against its issuer's published keys (`oidc`).
//!
//! Assertions are never logged; only iss/sub/aud/kid/x5t are.

use crate::certcred::{self, ClientCert};
use crate::config::{Config, FederatedCredential};
use crate::journal::GrantKind;
use crate::jwt::{self, Jwt, TimeError};
use crate::oidc::{self, Oidc, OidcError};

/// The only `client_assertion_type` Entra accepts [doc].
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra error answer: status, `error`, `error_description`.
#[derive(Debug)]
pub struct AadError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl AadError {
    pub fn invalid_client(description: String) -> AadError {
        AadError {
            status: 401,
            error: "invalid_client",
            description,
        }
    }

    pub fn invalid_request(description: String) -> AadError {
        AadError {
            status: 400,
            error: "invalid_request",
            description,
        }
    }

    /// Not a JWT, or a JWT without what the flow needs [doc: AADSTS50027].
    pub fn malformed() -> AadError {
        AadError::invalid_request("AADSTS50027: JWT token is invalid or malformed.".into())
    }

    /// Outside `exp`/`nbf`/`iat` [doc: AADSTS700024].
    pub fn time(e: TimeError) -> AadError {
        AadError::invalid_client(format!(
            "AADSTS700024: Client assertion is not within its valid time range. ({e})"
        ))
    }
}

/// The credentials assertions are verified with, built once at start.
pub struct Verifier {
    pub oidc: Oidc,
    pub certs: Vec<ClientCert>,
    pub federated: Vec<FederatedCredential>,
}

/// What the client presented, and where.
pub struct Presented<'a> {
    pub client_id: &'a str,
    pub assertion: &'a str,
    pub tenant: &'a str,
    /// Token endpoint URLs this request may have been sent to.
    pub endpoints: &'a [String],
}

impl Verifier {
    pub fn new(config: &Config) -> Result<Verifier, crate::EmulatorError> {
        let certs = config
            .client_certificates
            .iter()
            .map(ClientCert::load)
            .collect::<Result<_, _>>()?;
        Ok(Verifier {
            oidc: Oidc::new(config.oidc_ca_pem.as_deref())?,
            certs,
            federated: config.federated_credentials.clone(),
        })
    }

    /// An app registration the emulator knows: the secret's client or one
    /// with a certificate or federated credential.
    fn knows(&self, config: &Config, client_id: &str) -> bool {
        config.client_id == client_id
            || self.certs.iter().any(|c| c.client_id() == client_id)
            || self.federated.iter().any(|f| f.client_id == client_id)
    }

    /// Verifies an assertion as Entra would; the kind of credential used.
    pub async fn verify(&self, config: &Config, p: &Presented<'_>) -> Result<GrantKind, AadError> {
        let jwt = jwt::parse(p.assertion).map_err(|e| {
            tracing::debug!(error = %e, "client assertion refused");
            AadError::malformed()
        })?;
        let (h, c) = (&jwt.header, &jwt.claims);
        tracing::debug!(
            client_id = p.client_id, iss = %c.iss, sub = %c.sub, aud = %c.aud.joined(),
            kid = ?h.kid, x5t = ?h.x5t, x5t_s256 = ?h.x5t_s256, "client assertion"
        );
        if !self.knows(config, p.client_id) {
            return Err(AadError {
                status: 400,
                error: "unauthorized_client",
                description: format!(
                    "AADSTS700016: Application with identifier '{}' was not found in the directory '{}'.",
                    p.client_id, p.tenant
                ),
            });
        }
        let now = jwt::now_secs();
        if h.x5t.is_some() || h.x5t_s256.is_some() {
            certcred::verify(&self.certs, p.client_id, &jwt, p.endpoints, now)?;
            Ok(GrantKind::Certificate)
        } else {
            self.federated(p.client_id, &jwt, now).await?;
            Ok(GrantKind::Federated)
        }
    }

    /// A federated credential of the client must match `iss`, `sub` and one
    /// `aud` exactly [doc; obs: matching is case-sensitive]; then the
    /// signature with the issuer's key, then the validity window.
    async fn federated(&self, client_id: &str, jwt: &Jwt<'_>, now: f64) -> Result<(), AadError> {
        let c = &jwt.claims;
        let matched = self.federated.iter().any(|f| {
            f.client_id == client_id
                && f.issuer == c.iss
                && f.subject == c.sub
                && c.aud.values().contains(&f.audience)
        });
        if !matched {
            // 400 invalid_request [obs: azure-workload-identity issue 616].
            return Err(AadError::invalid_request(format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                c.iss,
                c.sub,
                c.aud.joined()
            )));
        }
        let kid = jwt.header.kid.as_deref();
        let key = self.oidc.key(&c.iss, kid).await.map_err(|e| match e {
            OidcError::NoKey(kid) => AadError::invalid_client(format!(
                "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key was not found., Key ID: '{kid}', Issuer: '{}']",
                c.iss
            )),
            other => {
                let chain = error_chain(&other);
                tracing::warn!(issuer = %c.iss, error = %chain, "issuer keys unavailable");
                AadError::invalid_client(format!(
                    "AADSTS50166: Request to External OIDC endpoint failed. Issuer: '{}'. {chain}",
                    c.iss
                ))
            }
        })?;
        if !oidc::verify(&key, &jwt.header.alg, jwt.signing_input, &jwt.signature) {
            return Err(AadError::invalid_client(format!(
                "AADSTS700027: Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Key ID: '{}']",
                kid.unwrap_or_default()
            )));
        }
        c.check_times(now).map_err(AadError::time)
    }
}

/// An error and its causes, `: `-joined, for a message without a backtrace.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
