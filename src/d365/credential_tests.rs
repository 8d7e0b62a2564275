//! Certificate assertions checked with an independent verifier (webpki on
//! the certificate), and the federated token file's edge cases.

use super::*;

const CERT: &str = include_str!("../../tests/fixtures/client-certificate/tls.crt");
const KEY: &str = include_str!("../../tests/fixtures/client-certificate/tls.key");
const OTHER_KEY: &str = include_str!("../../tests/fixtures/client-certificate/unregistered.key");
/// `openssl x509 -outform DER | openssl dgst -sha1 -binary | base64url`.
const CERT_X5T: &str = "aBAyD01pecKtUaY-zniK51peZ7A";
const ENDPOINT: &str = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";

fn decode_json(part: &str) -> serde_json::Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn assertion_is_signed_by_the_certificate_key_with_entra_claims() {
    let cert = ClientCertificate::from_pem(CERT.as_bytes(), KEY.as_bytes()).unwrap();
    assert_eq!(cert.thumbprint(), CERT_X5T);
    let jwt = cert.assertion("client-1", ENDPOINT).unwrap();
    let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
    let [header, claims, signature] = parts[..] else {
        panic!("not a JWS: {} parts", parts.len());
    };
    let header = decode_json(header);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t"], CERT_X5T);
    let claims = decode_json(claims);
    assert_eq!(claims["aud"], ENDPOINT);
    assert_eq!(
        (&claims["iss"], &claims["sub"]),
        (&json!("client-1"), &json!("client-1"))
    );
    let now = jiff::Timestamp::now().as_second();
    let nbf = claims["nbf"].as_i64().unwrap();
    assert!((now - 5..=now).contains(&nbf), "nbf {nbf} now {now}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - nbf,
        ASSERTION_LIFETIME_SECS
    );

    let der = CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap();
    let verifier = webpki::EndEntityCert::try_from(&der).unwrap();
    let signed = jwt.expose_secret().rsplit_once('.').unwrap().0;
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let rsa = webpki::ring::RSA_PKCS1_2048_8192_SHA256;
    verifier
        .verify_signature(rsa, signed.as_bytes(), &signature)
        .unwrap();
    let tampered = signed.replacen('.', ".e", 1);
    assert!(
        verifier
            .verify_signature(rsa, tampered.as_bytes(), &signature)
            .is_err()
    );
}

#[test]
fn every_assertion_has_its_own_id() {
    let cert = ClientCertificate::from_pem(CERT.as_bytes(), KEY.as_bytes()).unwrap();
    let jti = || {
        let jwt = cert.assertion("c", ENDPOINT).unwrap();
        decode_json(jwt.expose_secret().split('.').nth(1).unwrap())["jti"].clone()
    };
    assert_ne!(jti(), jti());
}

/// Whether an error is the one a case expects.
type Expect = fn(&CertificateError) -> bool;

#[test]
fn unusable_certificates_are_named() {
    let ec_key = ec_key_pem();
    let cases: [(&str, &[u8], &[u8], Expect); 4] = [
        (
            "key of another certificate",
            CERT.as_bytes(),
            OTHER_KEY.as_bytes(),
            |e| matches!(e, CertificateError::Mismatch(_)),
        ),
        ("no certificate", b"hello", KEY.as_bytes(), |e| {
            matches!(e, CertificateError::Certificate(_))
        }),
        (
            "certificate as the key",
            CERT.as_bytes(),
            CERT.as_bytes(),
            |e| matches!(e, CertificateError::PrivateKey(_)),
        ),
        ("an EC key", CERT.as_bytes(), ec_key.as_bytes(), |e| {
            matches!(
                e,
                CertificateError::NotRsaKind | CertificateError::NotRsa(_)
            )
        }),
    ];
    for (name, cert, key, expected) in cases {
        let err = ClientCertificate::from_pem(cert, key).err().expect(name);
        assert!(expected(&err), "{name}: {err:?}");
        assert!(
            !err.to_string().contains("PRIVATE KEY-----"),
            "{name}: {err}"
        );
    }
}

/// A PKCS#8 EC P-256 key, as PEM.
fn ec_key_pem() -> String {
    let rng = SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

#[test]
fn debug_names_the_kind_only() {
    let cert = ClientCertificate::from_pem(CERT.as_bytes(), KEY.as_bytes()).unwrap();
    let text = format!(
        "{:?} {:?}",
        Credential::ClientSecret(SecretString::from("hunter2")),
        Credential::Certificate(Arc::new(cert)),
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(CERT_X5T), "{text}");
}

fn assertion_of(proof: &ClientProof) -> String {
    let field = |name| {
        proof
            .fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.expose_secret().to_owned())
    };
    assert_eq!(field("client_assertion_type").as_deref(), Some(JWT_BEARER));
    assert!(field("client_secret").is_none());
    field("client_assertion").unwrap()
}

/// The kubelet rewrites the projected token before it expires: each token
/// request must send the file's current content.
#[tokio::test]
async fn workload_identity_reads_the_token_file_at_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    let credential = Credential::WorkloadIdentity(path.clone());
    std::fs::write(&path, "first.token.v1\n").unwrap();
    let proof = credential.proof("c", ENDPOINT).await.unwrap();
    assert_eq!(assertion_of(&proof), "first.token.v1");
    std::fs::write(&path, "second.token.v2").unwrap();
    let proof = credential.proof("c", ENDPOINT).await.unwrap();
    assert_eq!(assertion_of(&proof), "second.token.v2");
    assert_eq!(proof.secrets().collect::<Vec<_>>(), ["second.token.v2"]);
}

#[tokio::test]
async fn unusable_token_files_are_config_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let huge = dir.path().join("huge");
    std::fs::write(&huge, vec![b'a'; MAX_FEDERATED_TOKEN_BYTES as usize + 1]).unwrap();
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    for (path, why) in [
        (missing, "cannot be opened"),
        (empty, "is empty"),
        (huge, "larger than"),
        (binary, "cannot be read as text"),
    ] {
        let err = Credential::WorkloadIdentity(path.clone())
            .proof("c", ENDPOINT)
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(matches!(err, D365Error::Config { .. }), "{err:?}");
        assert!(
            text.contains(&path.display().to_string()) && text.contains(why),
            "{text}"
        );
    }
}
