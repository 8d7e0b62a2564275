//! Compact JWS parsing of client assertions [spec: RFC 7515, RFC 7519].
//! An assertion is outside input: its size is bounded before anything is
//! decoded, and every malformed shape is an error, never a panic. Nothing
//! here checks a signature; `oidc` and `certcred` do, with the key the
//! header names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use thiserror::Error;

/// Largest assertion read: a ServiceAccount token is ~1 KiB, a certificate
/// assertion less; anything bigger is refused before decoding.
pub const MAX_ASSERTION: usize = 16 * 1024;

/// Allowed clock skew for `nbf` and `iat`, seconds [doc: Entra allows
/// 5 minutes of clock skew on client assertions].
pub const SKEW_SECS: f64 = 300.0;

#[derive(Debug, Error)]
pub enum JwtError {
    #[error("assertion is {0} bytes, more than {MAX_ASSERTION}")]
    TooLarge(usize),
    #[error("assertion is not three dot-separated base64url parts")]
    Shape,
    #[error("assertion part is not base64url")]
    Base64(#[source] base64::DecodeError),
    #[error("assertion header or claims are not the expected JSON")]
    Json(#[source] serde_json::Error),
}

/// The JOSE header fields the emulator reads.
#[derive(Debug, Default, Deserialize)]
pub struct Header {
    #[serde(default)]
    pub alg: String,
    pub kid: Option<String>,
    /// base64url SHA-1 of the signing certificate's DER [doc].
    pub x5t: Option<String>,
    /// base64url SHA-256 of the signing certificate's DER [doc].
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: Option<String>,
}

/// `aud`: one string or an array of them [spec: RFC 7519 4.1.3].
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn values(&self) -> &[String] {
        match self {
            Audience::None => &[],
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v,
        }
    }

    /// For messages and logs: the values comma-separated.
    pub fn joined(&self) -> String {
        self.values().join(",")
    }
}

/// The registered claims the emulator checks. NumericDates may be
/// fractional [spec], so they are read as `f64`.
#[derive(Debug, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    pub exp: Option<f64>,
    pub nbf: Option<f64>,
    pub iat: Option<f64>,
    pub jti: Option<String>,
}

/// Why an assertion's validity window does not contain now.
#[derive(Debug, Error, PartialEq)]
pub enum TimeError {
    #[error("no exp claim")]
    NoExpiry,
    #[error("expired at {0}")]
    Expired(f64),
    #[error("not valid before {0}")]
    NotYetValid(f64),
}

impl Claims {
    /// `exp` must be after now; `nbf` and `iat` no later than now + skew.
    pub fn check_times(&self, now: f64) -> Result<(), TimeError> {
        let exp = self.exp.ok_or(TimeError::NoExpiry)?;
        if exp <= now {
            return Err(TimeError::Expired(exp));
        }
        for t in [self.nbf, self.iat].into_iter().flatten() {
            if t > now + SKEW_SECS {
                return Err(TimeError::NotYetValid(t));
            }
        }
        Ok(())
    }
}

/// A parsed, not yet verified assertion.
#[derive(Debug)]
pub struct Jwt<'a> {
    pub header: Header,
    pub claims: Claims,
    /// `base64url(header) . base64url(claims)`: what the signature covers.
    pub signing_input: &'a [u8],
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; refuses anything over `MAX_ASSERTION`.
pub fn parse(token: &str) -> Result<Jwt<'_>, JwtError> {
    if token.len() > MAX_ASSERTION {
        return Err(JwtError::TooLarge(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    if h.is_empty() || c.is_empty() || s.is_empty() {
        return Err(JwtError::Shape);
    }
    let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(JwtError::Base64);
    let header = serde_json::from_slice(&decode(h)?).map_err(JwtError::Json)?;
    let claims = serde_json::from_slice(&decode(c)?).map_err(JwtError::Json)?;
    let signature = decode(s)?;
    Ok(Jwt {
        header,
        claims,
        signing_input: &token.as_bytes()[..h.len() + 1 + c.len()],
        signature,
    })
}

/// Seconds since the Unix epoch, as JWT NumericDates count.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn parses_header_claims_and_signing_input() {
        let h = b64(r#"{"alg":"RS256","x5t#S256":"abc","kid":"k1"}"#);
        let c = b64(r#"{"iss":"i","sub":"s","aud":["a","b"],"exp":10.5,"jti":"j"}"#);
        let token = format!("{h}.{c}.{}", b64("sig"));
        let jwt = parse(&token).unwrap();
        assert_eq!(jwt.header.alg, "RS256");
        assert_eq!(jwt.header.x5t_s256.as_deref(), Some("abc"));
        assert_eq!(jwt.claims.aud.values(), ["a", "b"]);
        assert_eq!(jwt.claims.exp, Some(10.5));
        assert_eq!(jwt.signing_input, format!("{h}.{c}").as_bytes());
        assert_eq!(jwt.signature, b"sig");
    }

    #[test]
    fn refuses_bad_shapes_and_oversize() {
        for t in [
            "",
            "a.b",
            "a.b.c.d",
            "..",
            "e30.e30.",
            "!!.e30.AA",
            "e30.bnVsbA.AA",
        ] {
            assert!(parse(t).is_err(), "{t}");
        }
        let big = "a".repeat(MAX_ASSERTION + 1);
        assert!(matches!(parse(&big), Err(JwtError::TooLarge(_))));
    }

    #[test]
    fn time_window() {
        let c = |exp, nbf| Claims {
            exp,
            nbf,
            ..Claims::default()
        };
        assert_eq!(c(None, None).check_times(100.0), Err(TimeError::NoExpiry));
        assert_eq!(
            c(Some(100.0), None).check_times(100.0),
            Err(TimeError::Expired(100.0))
        );
        assert!(c(Some(101.0), Some(350.0)).check_times(100.0).is_ok());
        assert_eq!(
            c(Some(1000.0), Some(401.0)).check_times(100.0),
            Err(TimeError::NotYetValid(401.0))
        );
    }
}
