//! Test-side JWS signing (ring) and the token request with an assertion:
//! the client half of certificate and federated credentials.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

use d365_emulator::{DEFAULT_TENANT, Emulator};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, shifted by `offset`.
pub fn now_plus(offset: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now + offset
}

/// A signing key of either kind the emulator verifies.
pub enum Key {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Key {
    pub fn rsa_from_pem(pem: &str) -> Key {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        Key::Rsa(RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap())
    }

    pub fn ec_generate() -> Key {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Key::Ec(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }

    /// The public half as a JWK named `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        match self {
            Key::Rsa(k) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Key::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "use": "sig",
                       "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
        }
    }

    /// Compact JWS of `header` (its `alg` picks PKCS#1 or PSS for RSA) and `claims`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match self {
            Key::Rsa(k) => {
                let pad: &dyn signature::RsaEncoding = match header["alg"].as_str() {
                    Some("PS256") => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(pad, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            Key::Ec(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
        };
        format!("{input}.{}", b64(sig))
    }
}

/// SHA-1 and SHA-256 thumbprints (base64url) of a PEM certificate's DER.
pub fn thumbprints(cert_pem: &str) -> (String, String) {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let d = |alg| b64(ring::digest::digest(alg, &der));
    (
        d(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        d(&ring::digest::SHA256),
    )
}

/// Flips one bit of the signature part, keeping it valid base64url.
pub fn tamper(jwt: &str) -> String {
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[0] ^= 1;
    format!("{input}.{}", b64(raw))
}

/// A client-credentials request carrying `extra` form fields; the status
/// and the JSON answer.
pub async fn token_with(
    http: &reqwest::Client,
    emu: &Emulator,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let scope = emu.scope();
    let mut form = vec![("grant_type", "client_credentials"), ("scope", &scope)];
    form.extend_from_slice(extra);
    let r = http
        .post(format!("{}/{DEFAULT_TENANT}/oauth2/v2.0/token", emu.url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A token request with an assertion for `client_id`.
pub async fn assert_token(
    http: &reqwest::Client,
    emu: &Emulator,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    token_with(
        http,
        emu,
        &[
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// `error_description` of an Entra error answer.
pub fn description(v: &Value) -> &str {
    v["error_description"].as_str().unwrap_or_default()
}

/// Whether the description starts with `code`, a whole code ("AADSTS50027"
/// is not "AADSTS5002741") or a longer message prefix.
pub fn has_code(v: &Value, code: &str) -> bool {
    let d = description(v);
    match d.strip_prefix(code) {
        Some(rest) => code.contains(':') || rest.starts_with(':'),
        None => false,
    }
}

/// Sends each `(name, client_id, assertion, code)` and expects it refused
/// with that code: 400 `unauthorized_client` for an unknown client (700016),
/// 400 `invalid_request` for a malformed assertion (50027) or no matching
/// federated credential (70021), else 401 `invalid_client`.
pub async fn expect_refusals(
    http: &reqwest::Client,
    emu: &Emulator,
    cases: Vec<(&str, &str, String, &str)>,
) {
    for (name, client, jwt, code) in cases {
        let (s, v) = assert_token(http, emu, client, &jwt).await;
        let want = match code {
            "AADSTS700016" => (400, "unauthorized_client"),
            "AADSTS50027" | "AADSTS70021" => (400, "invalid_request"),
            _ => (401, "invalid_client"),
        };
        assert_eq!(
            (s, v["error"].as_str().unwrap_or_default()),
            want,
            "{name}: {v}"
        );
        assert!(has_code(&v, code), "{name}: {v}");
    }
}

/// The access token answered, used on `/data`: its status.
pub async fn data_status(http: &reqwest::Client, emu: &Emulator, answer: &Value) -> u16 {
    let token = answer["access_token"].as_str().expect("access_token");
    http.get(format!("{}/data/SalesOrderHeadersV2?$top=1", emu.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
