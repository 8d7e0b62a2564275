//! The Helm chart rendered by a real helm (built from its Go module by
//! hack/tools/helm.sh): lint and template in both RBAC modes, the values
//! that reach the container, the pod's hardening, and CRDs that are the
//! repository's own file. tests/e2e/chart_rbac.rs applies the RBAC to a real
//! API server.

use crate::helm::{env_var, kind, name, namespace, of_kind, one, render, run_helm};
use serde_yaml::Value;

fn lint(extra: &[&str]) -> std::process::Output {
    let chart = crate::helm::chart_dir();
    let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_helm(&args)
}

#[test]
fn helm_lint_passes_in_both_rbac_modes() {
    for extra in [
        &[][..],
        &["--set", "rbac.scope=cluster"][..],
        &[
            "--set",
            "replicaCount=3",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ][..],
        &[
            "--set",
            "rbac.scope=namespaces",
            "--set",
            "watchNamespaces={orders-eu,orders-us}",
        ][..],
        &[
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "crds.install=false",
        ][..],
    ] {
        let out = lint(extra);
        assert!(
            out.status.success(),
            "helm lint {extra:?}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn contradictory_values_are_refused() {
    for bad in [
        "rbac.scope=everywhere",
        "operator.logFormat=xml",
        "leaderElection.leaseDurationSeconds=1",
        // Leader election is always on: turning it off is refused, not ignored.
        "leaderElection.enabled=false",
        "leaderElection.fenceMargin=3 seconds",
        // Hosts, not URLs; lists, not strings.
        "allowedAuthorityHosts={https://login.microsoftonline.com}",
        "allowInsecureHosts=localhost",
        // The kubelet's minimum token lifetime is 10 minutes.
        "workloadIdentity.expirationSeconds=60",
    ] {
        assert!(!lint(&["--set", bad]).status.success(), "{bad} accepted");
    }
}

/// The default grants nothing cluster-wide: Secrets are readable only in
/// the namespace it is installed in, which is also the one it watches.
#[test]
fn default_is_namespaced_rbac_for_the_release_namespace_only() {
    let docs = render("so", "ops", &[]);
    assert!(
        of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty()
    );
    let mut roles: Vec<(&str, &str)> = of_kind(&docs, "Role")
        .iter()
        .map(|r| (namespace(r), name(r)))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("ops", "so-sales-order-operator"),
            ("ops", "so-sales-order-operator-leader-election")
        ]
    );
    assert_eq!(env_var(&docs, "WATCH_NAMESPACE").as_deref(), Some("ops"));
}

#[test]
fn cluster_mode_renders_a_cluster_role_and_watches_everything() {
    let docs = render("so", "ops", &["--set", "rbac.scope=cluster"]);
    let kinds: Vec<&str> = docs.iter().map(kind).collect();
    for k in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(
        of_kind(&docs, "Role")
            .iter()
            .map(|r| name(r))
            .collect::<Vec<_>>(),
        ["so-sales-order-operator-leader-election"],
        "in cluster mode the one Role is leader election's"
    );
    assert!(
        of_kind(&docs, "ServiceMonitor").is_empty(),
        "ServiceMonitor is opt-in"
    );
    assert_eq!(env_var(&docs, "WATCH_NAMESPACE").as_deref(), Some(""));
    // One writer with any replica count, during upgrades too: the new pod
    // stands by until the old one gives up the Lease.
    assert_eq!(env_var(&docs, "LEADER_ELECT").as_deref(), Some("true"));
    assert_eq!(
        one(&docs, "Deployment")["spec"]["strategy"]["type"],
        "RollingUpdate"
    );
    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"]["name"],
        one(&docs, "ClusterRole")["metadata"]["name"]
    );
    assert_eq!(
        binding["subjects"][0]["name"],
        one(&docs, "ServiceAccount")["metadata"]["name"]
    );
    assert_eq!(binding["subjects"][0]["namespace"], "ops");
}

#[test]
fn namespaces_mode_renders_a_role_per_namespace_and_nothing_cluster_wide() {
    let docs = render(
        "so",
        "ops",
        &[
            "--set",
            "rbac.scope=namespaces",
            "--set",
            "watchNamespaces={orders-eu,orders-us}",
        ],
    );
    assert!(
        of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty()
    );
    // One per watched namespace, plus leader election's in the release's.
    for k in ["Role", "RoleBinding"] {
        let mut namespaces: Vec<&str> = of_kind(&docs, k).iter().map(|d| namespace(d)).collect();
        namespaces.sort();
        assert_eq!(namespaces, ["ops", "orders-eu", "orders-us"], "{k}");
    }
    for binding in of_kind(&docs, "RoleBinding") {
        assert_eq!(
            binding["subjects"][0]["namespace"], "ops",
            "binds the release's ServiceAccount"
        );
    }
    assert_eq!(
        env_var(&docs, "WATCH_NAMESPACE").as_deref(),
        Some("orders-eu,orders-us")
    );
}

#[test]
fn operator_rules_are_the_least_the_code_needs() {
    let docs = render("so", "ops", &["--set", "rbac.scope=cluster"]);
    let rules = one(&docs, "ClusterRole")["rules"]
        .as_sequence()
        .unwrap()
        .clone();
    let flat: Vec<(String, String, String)> = rules
        .iter()
        .flat_map(|r| {
            let strs = |k: &str| {
                r[k].as_sequence()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            let (groups, resources, verbs) = (strs("apiGroups"), strs("resources"), strs("verbs"));
            let mut out = Vec::new();
            for g in &groups {
                for res in &resources {
                    for v in &verbs {
                        out.push((g.clone(), res.clone(), v.clone()));
                    }
                }
            }
            out
        })
        .collect();
    let mut got: Vec<String> = flat
        .iter()
        .map(|(g, r, v)| format!("{g}/{r}:{v}"))
        .collect();
    got.sort();
    let mut want = vec![
        "d365.salesops.io/salesorderstatuses:list",
        "d365.salesops.io/salesorderstatuses:watch",
        "d365.salesops.io/d365connections:list",
        "d365.salesops.io/d365connections:watch",
        "d365.salesops.io/salesorderstatuses/status:patch",
        "d365.salesops.io/d365connections/status:patch",
        "/secrets:get",
        "/secrets:list",
        "/secrets:watch",
        "events.k8s.io/events:create",
        "events.k8s.io/events:patch",
    ];
    want.sort();
    assert_eq!(
        got, want,
        "the operator's rules changed: update docs/operations.md#rbac and tests/e2e/chart_rbac.rs"
    );
    assert!(
        !flat
            .iter()
            .any(|(_, _, v)| v == "*" || v == "delete" || v == "update")
    );
}

#[test]
fn every_replica_count_runs_leader_election_with_a_named_lease_role() {
    for extra in [
        &["--set", "replicaCount=1"][..],
        &["--set", "replicaCount=2"][..],
        &["--set", "leaderElection.enabled=true"][..],
        &[
            "--set",
            "rbac.scope=namespaces",
            "--set",
            "watchNamespaces={a}",
        ][..],
    ] {
        let docs = render("so", "ops", extra);
        assert_eq!(
            env_var(&docs, "LEADER_ELECT").as_deref(),
            Some("true"),
            "{extra:?}"
        );
        assert_eq!(
            one(&docs, "Deployment")["spec"]["strategy"]["type"],
            "RollingUpdate"
        );
        // The fencing timings reach the operator (its defaults, spelled out).
        assert_eq!(
            env_var(&docs, "LEASE_RENEW_INTERVAL").as_deref(),
            Some("2s")
        );
        assert_eq!(env_var(&docs, "LEASE_FENCE_MARGIN").as_deref(), Some("3s"));
        let lease = env_var(&docs, "LEASE_NAME").unwrap();
        let role = of_kind(&docs, "Role")
            .into_iter()
            .find(|r| name(r).ends_with("-leader-election"))
            .expect("lease Role");
        assert_eq!(namespace(role), "ops");
        let rules = role["rules"].as_sequence().unwrap();
        let named = rules
            .iter()
            .find(|r| r["resourceNames"].is_sequence())
            .expect("a rule limited to the lease");
        assert_eq!(named["resourceNames"][0].as_str(), Some(lease.as_str()));
        assert_eq!(
            named["verbs"],
            serde_yaml::from_str::<Value>("[get, patch]").unwrap()
        );
        assert!(
            of_kind(&docs, "RoleBinding")
                .iter()
                .any(|b| b["roleRef"]["name"] == role["metadata"]["name"])
        );
    }
}

#[test]
fn deployment_runs_hardened_with_probes_and_downward_api() {
    let docs = render(
        "so",
        "ops",
        &[
            "--set",
            "operator.labelSelector=team=eu",
            "--set",
            "operator.resyncInterval=15m",
            "--set",
            "operator.conflictBackoffCap=8s",
        ],
    );
    let pod = &one(&docs, "Deployment")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"].as_u64(), Some(65532));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8080));
    assert!(
        c["resources"]["requests"]["memory"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(env_var(&docs, "POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(
        env_var(&docs, "POD_NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    assert_eq!(env_var(&docs, "HTTP_ADDR").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(env_var(&docs, "LABEL_SELECTOR").as_deref(), Some("team=eu"));
    assert_eq!(env_var(&docs, "RESYNC_INTERVAL").as_deref(), Some("15m"));
    assert_eq!(
        env_var(&docs, "CONFLICT_BACKOFF_CAP").as_deref(),
        Some("8s")
    );
    assert_eq!(env_var(&docs, "BACKOFF_CAP").as_deref(), Some("5m"));
    assert_eq!(
        pod["serviceAccountName"],
        one(&docs, "ServiceAccount")["metadata"]["name"]
    );
    // The Service and the ServiceMonitor find the pods and the port.
    let svc = one(&docs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&pod_labels(&docs)[k], v);
    }
    let docs = render(
        "so",
        "ops",
        &["--set", "metrics.serviceMonitor.enabled=true"],
    );
    let sm = one(&docs, "ServiceMonitor");
    assert_eq!(
        sm["spec"]["endpoints"][0]["port"],
        one(&docs, "Service")["spec"]["ports"][0]["name"]
    );
}

/// Every flag the binary reads from the environment is one the chart can
/// set: the names in the Deployment are the binary's own (`--help`).
#[test]
fn every_env_var_the_chart_sets_is_one_the_binary_reads() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_sales-order-operator"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let set = "operator.logLevel=debug,workloadIdentity.enabled=true";
    let docs = render("so", "ops", &["--set", set]);
    for (var, _) in crate::helm::env(&docs) {
        if var == "RUST_LOG" {
            continue; // tracing's filter, not a flag
        }
        assert!(
            help.contains(&format!("[env: {var}=")),
            "the binary has no flag for {var}:\n{help}"
        );
    }
}

fn pod_labels(docs: &[Value]) -> Value {
    one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"].clone()
}

#[test]
fn notes_tell_how_to_create_the_secret_and_connection() {
    let notes =
        std::fs::read_to_string(crate::helm::chart_dir().join("templates/NOTES.txt")).unwrap();
    for needle in [
        "kubectl -n",
        "create secret generic d365-credentials",
        "label secret d365-credentials d365.salesops.io/credentials=true",
        "kind: D365Connection",
        "clientSecretRef",
        "crds/",
    ] {
        assert!(notes.contains(needle), "NOTES.txt lacks {needle:?}");
    }
    // It renders in both modes (helm template does not print NOTES; install
    // --dry-run does, without a cluster when the client is offline).
    for extra in [
        &[][..],
        &["--set", "rbac.scope=cluster"][..],
        &["--set", "watchNamespaces={orders}"][..],
    ] {
        let chart = crate::helm::chart_dir();
        let mut args = vec![
            "install",
            "so",
            chart.to_str().unwrap(),
            "--dry-run=client",
            "--namespace",
            "ops",
        ];
        args.extend_from_slice(extra);
        let out = run_helm(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("create secret generic d365-credentials"),
            "{stdout}"
        );
        assert!(
            stdout.contains("d365.salesops.io/credentials=true"),
            "{stdout}"
        );
        let first = match extra {
            [] => "ops",
            [_, "rbac.scope=cluster"] => "<namespace>",
            _ => "orders",
        };
        assert!(
            stdout.contains(&format!("kubectl -n {first} create secret")),
            "{stdout}"
        );
        if extra.contains(&"rbac.scope=cluster") {
            assert!(stdout.contains("every Secret in the cluster"), "{stdout}");
        }
        // Nothing to copy that points nowhere: no made-up URLs.
        let notes = &stdout[stdout.find("NOTES:").expect("NOTES printed")..];
        assert!(
            !notes.contains("://<") && !notes.contains("<release>"),
            "placeholder URL in the notes:\n{notes}"
        );
        assert!(notes.contains("keeps them, and so every order"), "{notes}");
    }
}

/// The chart's default destination lists are the binary's own defaults.
#[test]
fn destination_lists_default_to_the_binarys() {
    use sales_order_operator::d365::{DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS};
    let docs = render("so", "ops", &[]);
    let var = |name| env_var(&docs, name).unwrap();
    assert_eq!(var("ALLOWED_AUTHORITY_HOSTS"), DEFAULT_AUTHORITY_HOSTS);
    assert_eq!(var("ALLOW_INSECURE_HOSTS"), DEFAULT_INSECURE_HOSTS);
    let docs = render(
        "so",
        "ops",
        &["--set", "allowedAuthorityHosts={a.example,b.example:8443}"],
    );
    assert_eq!(
        env_var(&docs, "ALLOWED_AUTHORITY_HOSTS").unwrap(),
        "a.example,b.example:8443"
    );
}
