//! The token cache's unit tests: schedule, lifetimes, redaction.

use super::*;
use crate::d365::credential::JWT_BEARER;

#[test]
fn refresh_schedule() {
    let table = [
        (3600, 3_300_000),
        (5400, 5_100_000),
        (900, 720_000),
        (60, 48_000),
        (1, 800),
    ];
    for (lifetime, want_ms) in table {
        assert_eq!(
            refresh_after(Duration::from_secs(lifetime)),
            Duration::from_millis(want_ms),
            "{lifetime}"
        );
    }
}

/// A cache whose client secret is "the-secret"; never contacted.
fn test_cache(url: &str) -> TokenCache {
    let transport = Transport::new(
        reqwest::Client::new(),
        std::sync::Arc::new(super::super::NoopObserver),
        Duration::from_secs(1),
        1 << 20,
    );
    TokenCache::new(
        transport,
        Url::parse(url).unwrap(),
        "client".into(),
        Credential::ClientSecret(SecretString::from("the-secret")),
        "scope".into(),
    )
}

#[test]
fn debug_never_shows_token_or_secret() {
    let cache = test_cache("http://127.0.0.1:1/t/oauth2/v2.0/token");
    *cache.write() = Some(Cached {
        token: AccessToken {
            secret: SecretString::from("the-token"),
            generation: 1,
        },
        refresh_at: Instant::now() + Duration::from_secs(60),
        expires_at: Instant::now() + Duration::from_secs(60),
    });
    let text = format!("{cache:?} {:?}", cache.fresh().unwrap());
    assert!(
        !text.contains("the-secret") && !text.contains("the-token"),
        "{text}"
    );
    assert!(text.contains("has_token: true"), "{text}");
    cache.invalidate(2);
    assert!(cache.fresh().is_some(), "other generation kept");
    cache.invalidate(1);
    assert!(cache.fresh().is_none());
}

#[tokio::test]
async fn redacts_echoed_secret() {
    let cache = test_cache("http://127.0.0.1:1/t");
    let proof = cache.credential.proof("client", "http://x").await.unwrap();
    assert_eq!(
        cache.redact("got client_secret=the-secret".into(), &proof),
        "got client_secret=[REDACTED]"
    );
}

/// An assertion echoed by the token endpoint is scrubbed like a secret,
/// while its type, which is no secret, stays readable.
#[tokio::test]
async fn redacts_echoed_assertion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "eyJhbGciOi.the-sa-token.sig\n").unwrap();
    let mut cache = test_cache("http://127.0.0.1:1/t");
    cache.credential = Credential::WorkloadIdentity(path);
    let proof = cache.credential.proof("client", "http://x").await.unwrap();
    let text = cache.redact(
        format!("bad {JWT_BEARER} assertion eyJhbGciOi.the-sa-token.sig"),
        &proof,
    );
    assert_eq!(text, format!("bad {JWT_BEARER} assertion [REDACTED]"));
}

/// Lifetime of a token answered with `expires_in`, or the error.
fn lifetime(expires_in: &str) -> Result<Duration, D365Error> {
    let cache = test_cache("http://127.0.0.1:1/t");
    let body = format!(r#"{{"token_type":"Bearer","access_token":"t","expires_in":{expires_in}}}"#);
    let now = Instant::now();
    cache
        .parse_token(body.as_bytes(), now)
        .map(|c| c.expires_at - now)
}

#[test]
fn lifetimes_are_clamped_and_absurd_ones_refused() {
    let hour = Duration::from_secs(3600);
    assert_eq!(lifetime("3599").unwrap(), Duration::from_secs(3599));
    assert_eq!(lifetime("\"3599\"").unwrap(), Duration::from_secs(3599));
    assert_eq!(lifetime("5").unwrap(), MIN_LIFETIME);
    assert_eq!(lifetime("172800").unwrap(), 24 * hour);
    for absurd in [
        "18446744073709551615",
        "\"18446744073709551615\"",
        "31708800",
        "1e300",
        "-1",
        "0",
        "null",
    ] {
        let err = lifetime(absurd).unwrap_err();
        assert!(
            matches!(err, D365Error::InvalidResponse { .. }),
            "{absurd}: {err:?}"
        );
        assert!(err.to_string().contains("expires_in"), "{err}");
    }
}
