//! Signing keys of federated-credential issuers: OIDC discovery
//! (`<iss>/.well-known/openid-configuration` → `jwks_uri`) and the JWKS,
//! fetched anonymously as Entra does [doc: workload identity federation].
//! Keys are cached per issuer and refetched once when a `kid` is unknown
//! (the issuer rotated). Fetches time out and read bounded bodies: an
//! unreachable or hostile issuer must not hang or bloat a token request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use reqwest::Url;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// Whole-request timeout of a discovery or JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or JWKS read.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Error)]
pub enum OidcError {
    #[error("invalid extra OIDC root certificate")]
    Root(#[source] reqwest::Error),
    #[error("cannot build the OIDC HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("'{0}' is not an https URL (http only on loopback)")]
    Scheme(String),
    #[error("fetching {url}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered more than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("{url} is not the expected JSON")]
    Json {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("discovery document names issuer '{found}', not '{expected}'")]
    IssuerMismatch { expected: String, found: String },
    #[error("no key with kid '{0}' in the issuer's JWKS")]
    NoKey(String),
}

/// One JSON Web Key [spec: RFC 7517/7518]; only the members used here.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jwk {
    #[serde(default)]
    pub kty: String,
    pub kid: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub crv: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// Fetcher and per-issuer cache of signing keys.
pub struct Oidc {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Arc<Vec<Jwk>>>>,
}

impl Oidc {
    /// `extra_root_pem`: a private CA to trust besides the public roots
    /// (the test control plane's apiserver).
    pub fn new(extra_root_pem: Option<&str>) -> Result<Oidc, OidcError> {
        let mut b = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = extra_root_pem {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(OidcError::Root)?
            {
                b = b.add_root_certificate(cert);
            }
        }
        Ok(Oidc {
            http: b.build().map_err(OidcError::Client)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer's key named `kid` (any key when the JWKS has exactly one
    /// and the header names none).
    pub async fn key(&self, issuer: &str, kid: Option<&str>) -> Result<Jwk, OidcError> {
        let cached = self.cache.lock().get(issuer).cloned();
        if let Some(keys) = cached
            && let Some(k) = pick(&keys, kid)
        {
            return Ok(k);
        }
        let keys = Arc::new(self.fetch_keys(issuer).await?);
        self.cache.lock().insert(issuer.to_string(), keys.clone());
        pick(&keys, kid).ok_or_else(|| OidcError::NoKey(kid.unwrap_or_default().to_string()))
    }

    async fn fetch_keys(&self, issuer: &str) -> Result<Vec<Jwk>, OidcError> {
        let base = issuer.trim_end_matches('/');
        let disc: Discovery = self
            .get_json(&format!("{base}/.well-known/openid-configuration"))
            .await?;
        if disc.issuer.trim_end_matches('/') != base {
            return Err(OidcError::IssuerMismatch {
                expected: issuer.to_string(),
                found: disc.issuer,
            });
        }
        let set: JwkSet = self.get_json(&disc.jwks_uri).await?;
        Ok(set.keys)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        if !allowed(url) {
            return Err(OidcError::Scheme(url.to_string()));
        }
        let fetch = |source| OidcError::Fetch {
            url: url.to_string(),
            source,
        };
        let mut resp = self.http.get(url).send().await.map_err(fetch)?;
        if !resp.status().is_success() {
            return Err(OidcError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fetch)? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(OidcError::TooLarge {
                    url: url.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|source| OidcError::Json {
            url: url.to_string(),
            source,
        })
    }
}

fn pick(keys: &[Jwk], kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
        None if keys.len() == 1 => keys.first().cloned(),
        None => None,
    }
}

/// https always; plain http only to a loopback host, so the emulator's own
/// tests can serve a fake issuer without a CA. Entra itself requires https.
pub fn allowed(url: &str) -> bool {
    let Ok(u) = Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "https" => true,
        "http" => {
            let host = u.host_str().unwrap_or_default();
            match host.trim_matches(['[', ']']).parse::<IpAddr>() {
                Ok(ip) => ip.is_loopback(),
                Err(_) => host.eq_ignore_ascii_case("localhost"),
            }
        }
        _ => false,
    }
}

/// Verifies `sig` over `input` with `jwk` under the header's `alg`: RS256
/// (RSA n/e) or ES256 (P-256 x/y, the fixed r||s encoding of JWS).
/// Anything else, or a key of the wrong kind for `alg`, fails.
pub fn verify(jwk: &Jwk, alg: &str, input: &[u8], sig: &[u8]) -> bool {
    let b64 = |v: &Option<String>| v.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    match (alg, jwk.kty.as_str()) {
        ("RS256", "RSA") => {
            let (Some(n), Some(e)) = (b64(&jwk.n), b64(&jwk.e)) else {
                return false;
            };
            let key = signature::RsaPublicKeyComponents {
                n: strip_zeros(&n),
                e: strip_zeros(&e),
            };
            key.verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok()
        }
        ("ES256", "EC") if jwk.crv.as_deref() == Some("P-256") => {
            let (Some(x), Some(y)) = (b64(&jwk.x), b64(&jwk.y)) else {
                return false;
            };
            let (Some(x), Some(y)) = (coordinate(&x), coordinate(&y)) else {
                return false;
            };
            let point = [&[0x04][..], &x, &y].concat();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, sig)
                .is_ok()
        }
        _ => false,
    }
}

/// A P-256 coordinate as 32 big-endian bytes; a shorter one (an encoder
/// that dropped leading zeros) is left-padded [spec: RFC 7518 6.2.1.2
/// asks for the full size, so be lenient in what is accepted].
fn coordinate(b: &[u8]) -> Option<[u8; 32]> {
    let b = strip_zeros(b);
    let mut out = [0u8; 32];
    out.get_mut(32usize.checked_sub(b.len())?..)?
        .copy_from_slice(b);
    Some(out)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_on_loopback() {
        for ok in [
            "https://example.com/x",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:1/x",
            "http://localhost:3",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for refused in [
            "http://example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "nonsense",
            "",
        ] {
            assert!(!allowed(refused), "{refused}");
        }
    }

    /// A key of the wrong kind, a wrong-size point or an unknown alg fails
    /// before any maths.
    #[test]
    fn key_kind_must_match_alg() {
        let b = |n: usize| Some(URL_SAFE_NO_PAD.encode(vec![1u8; n]));
        let ec = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: b(33),
            y: b(32),
            ..Jwk::default()
        };
        assert!(!verify(&ec, "ES256", b"m", &[0; 64]));
        assert!(!verify(&ec, "RS256", b"m", &[0; 64]));
        assert!(!verify(&Jwk::default(), "none", b"m", &[]));
        assert_eq!(strip_zeros(&[0, 0, 1, 0]), [1, 0]);
        assert_eq!(strip_zeros(&[0, 0]), [0u8; 0]);
        let mut padded = [0u8; 32];
        padded[31] = 7;
        assert_eq!(coordinate(&[7]), Some(padded));
        assert_eq!(coordinate(&[0; 33]), Some([0; 32]));
        assert_eq!(coordinate(&[1; 33]), None);
    }
}
