//! The CRDs in `crds/` on a real kube-apiserver: they apply, and the server
//! itself (schema, enum, format, CEL) rejects bad orders with its own message
//! before the operator ever sees them.
//!
//! Objects are built as untyped JSON on purpose: the point is what the
//! server accepts, including shapes the Rust types could never produce.

use std::path::Path;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn crds_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/crds"))
}

fn sos_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("d365.salesops.io", "v1alpha1", "SalesOrderStatus");
    ApiResource::from_gvk_with_plural(&gvk, "salesorderstatuses")
}

/// A control plane with the CRDs applied, a fresh namespace, and an API for
/// SalesOrderStatus in it.
async fn setup(prefix: &str) -> (Api<DynamicObject>, String) {
    let cp = testkit::control_plane().await;
    cp.apply_crds(crds_dir()).await;
    let ns = cp.namespace(prefix).await;
    let api = Api::namespaced_with(cp.client(), &ns, &sos_resource());
    (api, ns)
}

fn valid_spec() -> Value {
    json!({
        "connectionRef": {"name": "usmf"},
        "dataAreaId": "USMF",
        "salesOrderNumber": "SO-2025-0145",
        "salesStatus": "Delivered",
        "deliveryDate": "2025-02-08",
    })
}

fn order(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &sos_resource()).data(json!({ "spec": spec }))
}

/// The server's rejection: HTTP 422 Invalid, with its message returned.
fn rejection(result: kube::Result<DynamicObject>) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected Invalid, got {status:?}");
            status.message
        }
        Err(e) => panic!("expected a 422 from the server, got {e}"),
        Ok(o) => panic!("server accepted {:?}", o.data),
    }
}

async fn create(api: &Api<DynamicObject>, name: &str, spec: Value) -> kube::Result<DynamicObject> {
    api.create(&PostParams::default(), &order(name, spec)).await
}

#[tokio::test]
async fn crds_apply_and_a_valid_order_is_accepted_with_defaults() {
    let cp = testkit::control_plane().await;
    let names = cp.apply_crds(crds_dir()).await;
    assert!(
        names.contains(&"salesorderstatuses.d365.salesops.io".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"d365connections.d365.salesops.io".to_string()),
        "{names:?}"
    );

    let (api, _) = setup("crd-valid").await;
    let created = create(&api, "so", valid_spec())
        .await
        .expect("a valid order");
    // Defaults come from the schema, so every client sees the same values.
    assert_eq!(created.data["spec"]["policy"], "Enforce");
    assert_eq!(created.data["spec"]["suspend"], false);
}

#[tokio::test]
async fn bad_sales_status_is_rejected_by_the_server() {
    let (api, _) = setup("crd-status").await;
    let mut spec = valid_spec();
    spec["salesStatus"] = json!("Shipped");
    let msg = rejection(create(&api, "so", spec).await);
    assert!(
        msg.contains("spec.salesStatus") && msg.contains("Unsupported value: \"Shipped\""),
        "{msg}"
    );
}

#[tokio::test]
async fn bad_delivery_dates_are_rejected_by_the_server() {
    let (api, _) = setup("crd-date").await;
    // Not date-shaped, date-shaped but impossible, a date-time.
    for (i, bad) in ["next tuesday", "2025-13-01", "2025-02-08T00:00:00Z"]
        .iter()
        .enumerate()
    {
        let mut spec = valid_spec();
        spec["deliveryDate"] = json!(bad);
        let msg = rejection(create(&api, &format!("so-{i}"), spec).await);
        assert!(msg.contains("spec.deliveryDate"), "{bad}: {msg}");
    }
}

#[tokio::test]
async fn identity_fields_are_immutable() {
    let (api, _) = setup("crd-identity").await;
    create(&api, "so", valid_spec())
        .await
        .expect("a valid order");

    // A non-identity field may change: the CEL rules do not freeze the spec.
    let patch = |spec: Value| Patch::Merge(json!({ "spec": spec }));
    let params = PatchParams::default();
    api.patch("so", &params, &patch(json!({"salesStatus": "Invoiced"})))
        .await
        .expect("salesStatus is mutable");

    for (field, change) in [
        (
            "salesOrderNumber",
            json!({"salesOrderNumber": "SO-2025-0146"}),
        ),
        ("dataAreaId", json!({"dataAreaId": "DEMF"})),
        ("connectionRef", json!({"connectionRef": {"name": "other"}})),
    ] {
        let msg = rejection(api.patch("so", &params, &patch(change)).await);
        assert!(
            msg.contains(&format!("spec.{field}")) && msg.contains("immutable"),
            "{field}: {msg}"
        );
    }
}

/// What a user sees with kubectl: the server's message, not a client-side one.
#[tokio::test]
async fn kubectl_shows_the_servers_rejection() {
    let (_, ns) = setup("crd-kubectl").await;
    let cp = testkit::control_plane().await;
    let manifest = serde_json::to_string(&json!({
        "apiVersion": "d365.salesops.io/v1alpha1",
        "kind": "SalesOrderStatus",
        "metadata": {"name": "so", "namespace": ns},
        "spec": {
            "connectionRef": {"name": "usmf"},
            "dataAreaId": "USMF",
            "salesOrderNumber": "SO-1",
            "salesStatus": "Shipped",
        },
    }))
    .unwrap();
    let file = cp.dir().join(format!("{ns}.json"));
    std::fs::write(&file, manifest).unwrap();
    let out = cp.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kubectl accepted a bad order");
    assert!(
        stderr.contains("Unsupported value: \"Shipped\""),
        "{stderr}"
    );
}

/// D365 stores "no date" as 1900-01-01: a date on or before it could never
/// be seen written, so the server refuses it (and accepts a later one, or
/// none at all).
#[tokio::test]
async fn delivery_dates_on_or_before_the_unset_marker_are_rejected_by_the_server() {
    let (api, _) = setup("crd-unset-date").await;
    for (i, bad) in ["1900-01-01", "1899-12-31", "0001-01-01"]
        .iter()
        .enumerate()
    {
        let mut spec = valid_spec();
        spec["deliveryDate"] = json!(bad);
        let msg = rejection(create(&api, &format!("so-{i}"), spec).await);
        assert!(
            msg.contains("spec.deliveryDate") && msg.contains("after 1900-01-01"),
            "{bad}: {msg}"
        );
    }
    for (name, date) in [("later", json!("1900-01-02")), ("none", Value::Null)] {
        let mut spec = valid_spec();
        spec["deliveryDate"] = date;
        create(&api, name, spec).await.expect(name);
    }
}

/// Identity fields end up in URLs, logs and messages: no control
/// characters (C0, DEL, C1) in any of them.
#[tokio::test]
async fn control_characters_in_identity_fields_are_rejected_by_the_server() {
    let (api, _) = setup("crd-control").await;
    let cases = [
        ("salesOrderNumber", json!({"salesOrderNumber": "SO-1\n"})),
        ("salesOrderNumber", json!({"salesOrderNumber": "SO\u{7}1"})),
        ("salesOrderNumber", json!({"salesOrderNumber": "SO\u{85}1"})),
        ("dataAreaId", json!({"dataAreaId": "US\tM"})),
        (
            "connectionRef.name",
            json!({"connectionRef": {"name": "usmf\u{0}"}}),
        ),
        (
            "connectionRef.name",
            json!({"connectionRef": {"name": "us\u{7f}mf"}}),
        ),
    ];
    for (i, (field, change)) in cases.iter().enumerate() {
        let mut spec = valid_spec();
        spec.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let msg = rejection(create(&api, &format!("so-{i}"), spec).await);
        assert!(msg.contains(&format!("spec.{field}")), "{change}: {msg}");
    }
    // Printable non-ASCII is fine: only control characters are refused.
    let mut spec = valid_spec();
    spec["salesOrderNumber"] = json!("SO-Ä/1 é");
    create(&api, "printable", spec)
        .await
        .expect("printable characters");
}

fn connection_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("d365.salesops.io", "v1alpha1", "D365Connection");
    ApiResource::from_gvk_with_plural(&gvk, "d365connections")
}

/// A connection must name exactly one credential; each single one is
/// accepted, with the tls.crt/tls.key defaults for a certificate.
#[tokio::test]
async fn a_connection_names_exactly_one_credential() {
    let cp = testkit::control_plane().await;
    cp.apply_crds(crds_dir()).await;
    let ns = cp.namespace("crd-credential").await;
    let api: Api<DynamicObject> = Api::namespaced_with(cp.client(), &ns, &connection_resource());
    let secret = json!({"clientSecretRef": {"name": "creds", "key": "client-secret"}});
    let certificate = json!({"clientCertificateRef": {"name": "cert"}});
    let workload = json!({"workloadIdentity": {}});
    let connection = |name: &str, credentials: &[&Value]| {
        let mut auth = json!({"tenantId": "t", "clientId": "c"});
        for c in credentials {
            auth.as_object_mut()
                .unwrap()
                .extend(c.as_object().unwrap().clone());
        }
        let spec = json!({"url": "https://contoso.example", "auth": auth});
        DynamicObject::new(name, &connection_resource()).data(json!({ "spec": spec }))
    };
    let pp = PostParams::default();
    for (i, credentials) in [
        vec![],
        vec![&secret, &workload],
        vec![&secret, &certificate, &workload],
    ]
    .into_iter()
    .enumerate()
    {
        let msg = rejection(
            api.create(&pp, &connection(&format!("bad-{i}"), &credentials))
                .await,
        );
        assert!(msg.contains("set exactly one of clientSecretRef"), "{msg}");
    }
    for (name, credential) in [
        ("secret", &secret),
        ("cert", &certificate),
        ("wi", &workload),
    ] {
        let created = api
            .create(&pp, &connection(name, &[credential]))
            .await
            .expect(name);
        if name == "cert" {
            let stored = &created.data["spec"]["auth"]["clientCertificateRef"];
            assert_eq!(stored["certificateKey"], "tls.crt", "{stored}");
            assert_eq!(stored["privateKeyKey"], "tls.key", "{stored}");
        }
    }
}
