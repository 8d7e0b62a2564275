//! The chart's workload identity: off by default; on, the pod gets exactly
//! the audience-bound projected token the operator is told to read.

use serde_yaml::Value;

use crate::helm::{env_var, one, render};

const TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

fn pod_spec(docs: &[Value]) -> &Value {
    &one(docs, "Deployment")["spec"]["template"]["spec"]
}

#[test]
fn no_projected_token_unless_workload_identity_is_enabled() {
    let docs = render("so", "ops", &[]);
    assert_eq!(env_var(&docs, TOKEN_FILE), None);
    assert!(
        pod_spec(&docs)["volumes"].is_null(),
        "{:?}",
        pod_spec(&docs)
    );
}

#[test]
fn workload_identity_mounts_the_token_the_operator_reads() {
    let docs = render(
        "so",
        "ops",
        &[
            "--set",
            "workloadIdentity.enabled=true,workloadIdentity.expirationSeconds=1800",
        ],
    );
    let pod = pod_spec(&docs);
    let volume = &pod["volumes"][0];
    let source = &volume["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(
        source["audience"], "api://AzureADTokenExchange",
        "{volume:?}"
    );
    assert_eq!(source["expirationSeconds"], 1800, "{volume:?}");
    let mount = &pod["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["name"], volume["name"], "{mount:?}");
    assert_eq!(mount["readOnly"], true, "{mount:?}");
    let path = format!(
        "{}/{}",
        mount["mountPath"].as_str().unwrap(),
        source["path"].as_str().unwrap()
    );
    assert_eq!(env_var(&docs, TOKEN_FILE), Some(path));
}

#[test]
fn the_audience_is_configurable_for_other_clouds() {
    let docs = render(
        "so",
        "ops",
        &[
            "--set",
            "workloadIdentity.enabled=true,workloadIdentity.audience=api://AzureADTokenExchangeChina",
        ],
    );
    let source = &pod_spec(&docs)["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(source["audience"], "api://AzureADTokenExchangeChina");
}
