//! Throwaway PKI for one control plane: a CA, the apiserver's serving cert,
//! an admin client cert and the ServiceAccount token signing key.
//!
//! Generated in-process with rcgen (ring backend, already in the lockfile via
//! kube's rustls) so a fresh machine needs no `openssl` binary, and the CA is
//! known before the apiserver starts, so the kubeconfig can pin it instead of
//! skipping TLS verification.

use std::path::Path;

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM material; keys are PKCS#8, which both Go and rustls read.
pub(crate) struct Pki {
    pub ca_cert: String,
    pub admin_cert: String,
    pub admin_key: String,
}

/// Writes into `cert_dir` the files kube-apiserver picks up by name
/// (`apiserver.crt`/`apiserver.key`, as envtest does) plus `ca.crt` (client
/// CA) and `sa.key`/`sa.pub` (ServiceAccount token keys).
pub(crate) fn generate(cert_dir: &Path) -> Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = dn("testkit-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    // Serving cert: the IP SAN matters, clients connect to https://127.0.0.1.
    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "10.0.0.1".to_string(), // the `kubernetes` Service IP in 10.0.0.0/24
        "kubernetes.default.svc".to_string(),
    ])?;
    serving.distinguished_name = dn("kube-apiserver", None);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &ca)?;

    // Admin: the x509 authenticator maps CN to the user and O to groups;
    // system:masters bypasses RBAC, like a kind/envtest admin.
    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin.distinguished_name = dn("admin", Some("system:masters"));
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &ca)?;

    let sa_key = KeyPair::generate()?;

    let write = |name: &str, body: &str| std::fs::write(cert_dir.join(name), body);
    write("apiserver.crt", &serving_cert.pem())?;
    write("apiserver.key", &serving_key.serialize_pem())?;
    write("ca.crt", &ca_cert.pem())?;
    write("sa.key", &sa_key.serialize_pem())?;
    write("sa.pub", &sa_key.public_key_pem())?;

    Ok(Pki {
        ca_cert: ca_cert.pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
    })
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}
