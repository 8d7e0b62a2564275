//! Kubeconfig files for the admin identity, optionally impersonating someone.
//!
//! Files (not just a `kube::Config`) because kubectl and the operator binary,
//! run as subprocesses, read them exactly as a user's would.

use std::path::Path;

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::pki::Pki;

/// Writes a kubeconfig for `server` authenticating with the admin client
/// cert; with `impersonate`, the apiserver acts as that user and groups
/// (kubeconfig `as` / `as-groups`, which kube-rs honours too).
pub(crate) fn write(
    path: &Path,
    server: &str,
    pki: &Pki,
    impersonate: Option<(&str, &[&str])>,
) -> Result<()> {
    let b64 = |s: &str| STANDARD.encode(s);
    let mut user = json!({
        "client-certificate-data": b64(&pki.admin_cert),
        "client-key-data": b64(&pki.admin_key),
    });
    if let Some((name, groups)) = impersonate {
        user["as"] = json!(name);
        if !groups.is_empty() {
            user["as-groups"] = json!(groups);
        }
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testkit", "cluster": {
            "server": server,
            "certificate-authority-data": b64(&pki.ca_cert),
        }}],
        "users": [{"name": "testkit", "user": user}],
        "contexts": [{"name": "testkit", "context": {
            "cluster": "testkit", "user": "testkit", "namespace": "default",
        }}],
        "current-context": "testkit",
    });
    std::fs::write(path, serde_yaml::to_string(&doc)?)?;
    Ok(())
}
