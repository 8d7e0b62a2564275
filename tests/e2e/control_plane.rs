//! Smoke test of the real control plane: if this fails, every test that
//! needs kube-apiserver fails too, and this one says why most directly.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

#[tokio::test]
async fn configmap_round_trip_and_kubectl() {
    let cp = testkit::control_plane().await;
    assert!(
        cp.version().starts_with("v1.35."),
        "server version {}",
        cp.version()
    );
    let ns = cp.namespace("smoke").await;

    let api: Api<ConfigMap> = Api::namespaced(cp.client(), &ns);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("answer".into(), "42".into())])),
        ..Default::default()
    };
    api.create(&PostParams::default(), &cm).await.unwrap();
    let read = api.get("settings").await.unwrap();
    assert_eq!(read.data.unwrap()["answer"], "42");

    let out = cp.kubectl(&["get", "ns", &ns, "-o", "name"]);
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("namespace/{ns}")
    );
}

/// The impersonating kubeconfig really changes who the apiserver sees: an
/// unbound ServiceAccount may not list namespaces.
#[tokio::test]
async fn impersonation_is_subject_to_rbac() {
    let cp = testkit::control_plane().await;
    let ns = cp.namespace("rbac").await;
    let user = format!("system:serviceaccount:{ns}:nobody");
    let kubeconfig = cp.kubeconfig_impersonating(&user, &[]);
    let out = cp.kubectl_with(&kubeconfig, &["get", "ns"]);
    assert!(
        !out.status.success(),
        "an unbound ServiceAccount listed namespaces"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("forbidden") && stderr.contains(&user),
        "{stderr}"
    );

    let client = cp.client_impersonating(&user, &[]);
    let err = Api::<ConfigMap>::namespaced(client, &ns)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err}"
    );
}
