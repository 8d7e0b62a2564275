//! Certificate and workload-identity connections: what is read, and what
//! each broken setup reports.

use std::path::PathBuf;

use super::*;

const CERT: &str = include_str!("../../tests/fixtures/client-certificate/tls.crt");
const KEY: &str = include_str!("../../tests/fixtures/client-certificate/tls.key");
const OTHER_KEY: &str = include_str!("../../tests/fixtures/client-certificate/unregistered.key");

fn certificate_connection() -> Fixture {
    let mut f = Fixture::with(usmf_with(
        1,
        json!({"clientCertificateRef": {"name": "creds"}}),
    ));
    f.secret_seen("1");
    f
}

fn workload_identity(token_file: Option<PathBuf>) -> Fixture {
    let mut f = Fixture::with(usmf_with(1, json!({"workloadIdentity": {}})));
    f.connections = f.connections.with_workload_identity(token_file);
    f
}

fn credential_of(resolved: &Resolved) -> String {
    format!("{:?}", resolved.client.settings().credential)
}

#[tokio::test]
async fn a_certificate_is_read_from_the_default_tls_keys() {
    let f = certificate_connection();
    f.secrets
        .put("creds", &[("tls.crt", CERT), ("tls.key", KEY)]);
    let resolved = f.resolve().await.expect("resolves");
    assert!(
        credential_of(&resolved).starts_with("Certificate(x5t="),
        "{}",
        credential_of(&resolved)
    );
    assert_eq!(f.reads(), 1);
}

#[tokio::test]
async fn a_broken_certificate_secret_names_what_is_wrong_without_quoting_the_key() {
    let f = certificate_connection();
    f.secrets.put("creds", &[("tls.crt", CERT)]);
    let err = f.resolve().await.err().expect("no key");
    assert!(
        matches!(&err, ResolveError::SecretKeyMissing { key, .. } if key == "tls.key"),
        "{err}"
    );

    f.secrets
        .put("creds", &[("tls.crt", CERT), ("tls.key", OTHER_KEY)]);
    let err = f.resolve().await.err().expect("another certificate's key");
    assert!(
        matches!(err, ResolveError::CertificateInvalid { .. }),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::ConnectionNotReady);
    let text = err.to_string();
    assert!(
        text.contains("does not belong to the certificate"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    f.secrets
        .put_labelled("creds", &[], &[("tls.crt", CERT), ("tls.key", KEY)]);
    let err = f.resolve().await.err().expect("unlabelled");
    assert!(
        matches!(err, ResolveError::SecretNotLabelled { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn workload_identity_reads_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("azure-identity-token");
    let f = workload_identity(Some(token.clone()));
    let resolved = f.resolve().await.expect("resolves with no Secret at all");
    assert_eq!(
        credential_of(&resolved),
        format!("WorkloadIdentity({})", token.display())
    );
    assert_eq!(f.reads(), 0, "no Secret is read");
}

#[tokio::test]
async fn workload_identity_without_a_token_file_says_how_to_set_one_up() {
    let f = workload_identity(None);
    let err = f.resolve().await.err().expect("no token file");
    assert!(
        matches!(err, ResolveError::WorkloadIdentityUnavailable { .. }),
        "{err}"
    );
    assert_eq!(err.reason(), Reason::ConnectionNotReady);
    assert!(
        err.to_string().contains("--workload-identity-token-file"),
        "{err}"
    );
    assert_eq!(f.reads(), 0);
}

/// An object stored before the CRD's one-credential rule existed.
#[tokio::test]
async fn a_connection_with_no_credential_is_refused() {
    let f = Fixture::with(usmf_with(1, json!({})));
    let err = f.resolve().await.err().expect("no credential");
    assert!(matches!(err, ResolveError::NoCredential { .. }), "{err}");
}
