//! `helm install` / `helm uninstall` of the chart against a real API server
//! (a private control plane: these tests create and delete the CRDs every
//! other test relies on): `crds.keep` (default) leaves the CRDs and the
//! orders after uninstall, `crds.keep=false` takes them away, and with
//! `rbac.scope=namespaces` a watched namespace that does not exist fails
//! the install by name (docs/operations.md, "Install").

use std::process::Output;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client, api::PostParams};
use sales_order_operator::api::SalesOrderStatus;
use testkit::ControlPlane;

use crate::helm::{chart_dir, run_helm};

const CRD: &str = "salesorderstatuses.d365.salesops.io";
const NS: &str = "ops";
const TIMEOUT: Duration = Duration::from_secs(60);

fn helm(cp: &ControlPlane, args: &[&str]) -> Output {
    let kubeconfig = cp.kubeconfig().to_str().unwrap().to_owned();
    let mut all = vec!["--kubeconfig", &kubeconfig];
    all.extend_from_slice(args);
    run_helm(&all)
}

fn helm_ok(cp: &ControlPlane, args: &[&str]) -> String {
    let out = helm(cp, args);
    assert!(
        out.status.success(),
        "helm {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn install(cp: &ControlPlane, release: &str, sets: &[&str]) {
    let chart = chart_dir();
    let mut args = vec![
        "install",
        release,
        chart.to_str().unwrap(),
        "-n",
        NS,
        "--create-namespace",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm_ok(cp, &args);
}

/// Creates an order once its CRD serves (it is established asynchronously).
async fn create_order(client: &Client, n: usize) {
    let api: Api<SalesOrderStatus> = Api::namespaced(client.clone(), NS);
    testkit::wait_for(TIMEOUT, || async {
        api.create(&PostParams::default(), &SalesOrderStatus::test(n))
            .await
            .ok()
    })
    .await
    .expect("an order can be created once the chart installed the CRD");
}

async fn crd(client: &Client) -> Option<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get_opt(CRD).await.expect("reading the CRD")
}

/// One private control plane for both (each boots etcd and an apiserver).
#[tokio::test]
async fn uninstall_keeps_crds_and_orders_unless_crds_keep_is_false() {
    let cp = testkit::private_control_plane().await;
    let client = cp.client();
    a_watched_namespace_that_does_not_exist_fails_the_install_by_name(&cp);

    // crds.keep=false: uninstall deletes the CRDs, and the orders with them.
    install(&cp, "gone", &["crds.keep=false"]);
    let installed = crd(&client).await.expect("helm installed the CRD");
    let annotations = installed.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("helm.sh/resource-policy"),
        "{annotations:?}"
    );
    create_order(&client, 1).await;
    helm_ok(&cp, &["uninstall", "gone", "-n", NS]);
    testkit::wait_for(TIMEOUT, || async {
        crd(&client).await.is_none().then_some(())
    })
    .await
    .expect("with crds.keep=false uninstall deletes the CRD");

    // Default: the CRDs carry the keep policy; uninstall leaves them and
    // every order in place.
    install(&cp, "kept", &[]);
    let installed = crd(&client).await.expect("helm installed the CRD");
    let policy = installed
        .metadata
        .annotations
        .unwrap_or_default()
        .get("helm.sh/resource-policy")
        .cloned();
    assert_eq!(policy.as_deref(), Some("keep"));
    create_order(&client, 2).await;
    helm_ok(&cp, &["uninstall", "kept", "-n", NS]);
    // Not merely still there while its deletion runs: never deleted.
    let after = crd(&client)
        .await
        .expect("the CRD was deleted on uninstall");
    assert_eq!(
        after.metadata.deletion_timestamp, None,
        "uninstall started deleting the CRD"
    );
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), NS);
    let left = orders.list(&Default::default()).await.expect("orders list");
    assert_eq!(left.items.len(), 1, "the order survived the uninstall");
}

/// With crds.install=false, so the failed release owns no CRD.
fn a_watched_namespace_that_does_not_exist_fails_the_install_by_name(cp: &ControlPlane) {
    let out = helm(
        cp,
        &[
            "install",
            "early",
            chart_dir().to_str().unwrap(),
            "-n",
            NS,
            "--create-namespace",
            "--set",
            "crds.install=false",
            "--set",
            "watchNamespaces={orders-not-yet}",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "installed without its namespace");
    assert!(
        stderr.contains(r#"namespaces "orders-not-yet" not found"#),
        "{stderr}"
    );
}
