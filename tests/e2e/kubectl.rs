//! What a user reads with the real kubectl against the real apiserver with
//! the CRDs installed: `kubectl explain` describes both kinds and every
//! spec and status field, and `-o wide` adds the columns that explain a
//! status (message, policy, conflicts; a connection's Secret).

use std::path::Path;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures;
use serde_json::json;

use crate::support::{create_connection, create_orders};

fn crds_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn text(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DESCRIPTION block of a `kubectl explain` answer, trimmed.
fn description(explained: &str) -> String {
    let Some((_, rest)) = explained.split_once("DESCRIPTION:") else {
        return String::new();
    };
    let body = rest.split("\nFIELDS:").next().unwrap_or_default();
    body.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Field paths (`spec.auth.clientId`) of a `kubectl explain --recursive`
/// answer, from its indentation: two spaces per level under FIELDS.
fn field_paths(recursive: &str) -> Vec<String> {
    let fields = recursive
        .split_once("\nFIELDS:\n")
        .map(|(_, f)| f)
        .unwrap_or_default();
    let mut stack: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    for line in fields.lines() {
        // A field line is `name <type>`; others (`enum: …`) describe the
        // field above.
        let mut tokens = line.split_whitespace();
        let (Some(name), Some(kind)) = (tokens.next(), tokens.next()) else {
            continue;
        };
        if !kind.starts_with('<') {
            continue;
        }
        let depth = (line.len() - line.trim_start().len()).saturating_sub(2) / 2;
        stack.truncate(depth);
        stack.push(name.to_owned());
        paths.push(stack.join("."));
    }
    paths
}

/// Why a description is not one: empty, `<empty>`, or kube's placeholder.
fn is_placeholder(description: &str) -> bool {
    description.is_empty()
        || description.contains("<empty>")
        || description.contains("Auto-generated")
}

/// Every field of `kind` under spec and status (and the kind itself) has a
/// real description in `kubectl explain`.
async fn explain_describes_everything(kind: &str, expected_fields: &[&str]) {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&crds_dir()).await;
    // The apiserver publishes a new CRD's OpenAPI a moment after it is
    // Established.
    let root = testkit::wait_for(Duration::from_secs(60), || async {
        let out = cp.kubectl(&["explain", kind]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !is_placeholder(&description(&text))).then_some(text)
    })
    .await
    .unwrap_or_else(|_| panic!("kubectl explain {kind} never showed a real kind description"));
    assert!(description(&root).len() > 40, "{root}");

    let recursive = text(&cp.kubectl(&["explain", kind, "--recursive"]));
    let paths: Vec<String> = field_paths(&recursive)
        .into_iter()
        .filter(|p| {
            p == "spec" || p.starts_with("spec.") || p == "status" || p.starts_with("status.")
        })
        .collect();
    assert!(paths.len() > 15, "too few fields parsed: {paths:?}");
    for field in expected_fields {
        assert!(
            paths.iter().any(|p| p == field),
            "{field} missing from {paths:?}"
        );
    }
    let mut placeholders = Vec::new();
    for path in &paths {
        let explained = text(&cp.kubectl(&["explain", &format!("{kind}.{path}")]));
        let found = description(&explained);
        if is_placeholder(&found) {
            placeholders.push(format!("{path}: {found:?}"));
        }
    }
    assert!(
        placeholders.is_empty(),
        "{kind}: fields without a description: {placeholders:#?}"
    );
}

#[tokio::test]
async fn kubectl_explain_describes_orders_and_every_field() {
    explain_describes_everything(
        "sos",
        &[
            "spec.connectionRef.name",
            "spec.policy",
            "status.observedGeneration",
            "status.conflicts",
            "status.conditions.reason",
            "status.lastUpdate.toEtag",
            "status.observed.salesStatus",
        ],
    )
    .await;
}

#[tokio::test]
async fn kubectl_explain_describes_connections_and_every_field() {
    explain_describes_everything(
        "d365c",
        &[
            "spec.auth.tenantId",
            "spec.auth.clientSecretRef.key",
            "spec.fields.salesStatus",
            "spec.maxConcurrentRequests",
            "status.conditions.message",
            "status.entity.key",
            "status.entity.fields.editable",
        ],
    )
    .await;
}

/// The header and the row of `name` in a `kubectl get` table.
fn header_and_row(table: &str, name: &str) -> (String, String) {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default().to_owned();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .to_owned();
    (header, row)
}

#[tokio::test]
async fn kubectl_get_wide_shows_message_policy_and_conflicts() {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&crds_dir()).await;
    let client = cp.client();
    let ns = cp.namespace("wide").await;
    create_connection(&client, &ns, D365Connection::test("https://d365.invalid")).await;
    let order = SalesOrderStatus::test(1).observing();
    create_orders(&client, &ns, [order]).await;

    // A status as the operator writes it, set directly: no operator runs.
    let message = "Observe policy: D365 differs from the spec in SalesOrderStatus; nothing written";
    let status = json!({"status": {
        "observedGeneration": 1,
        "conflicts": 3,
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "Drifted", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
        }],
    }});
    let params = PatchParams::default();
    Api::<SalesOrderStatus>::namespaced(client.clone(), &ns)
        .patch_status("so-2025-0001", &params, &Patch::Merge(&status))
        .await
        .expect("status patch");
    let secret_message = "Secret d365-credentials not found";
    let conn_status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "SecretNotFound", "message": secret_message,
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1,
    }]}});
    Api::<D365Connection>::namespaced(client.clone(), &ns)
        .patch_status(fixtures::CONNECTION, &params, &Patch::Merge(&conn_status))
        .await
        .expect("connection status patch");

    let narrow = text(&cp.kubectl(&["get", "sos", "-n", &ns]));
    assert!(!narrow.contains("MESSAGE"), "{narrow}");
    let wide = text(&cp.kubectl(&["get", "sos", "-n", &ns, "-o", "wide"]));
    let (header, row) = header_and_row(&wide, "so-2025-0001");
    for column in ["READY", "REASON", "POLICY", "CONFLICTS", "MESSAGE"] {
        assert!(header.contains(column), "{column} not in {header}");
    }
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells.contains(&"Observe") && cells.contains(&"3"), "{row}");
    assert!(row.contains(message), "{row}");

    let wide = text(&cp.kubectl(&["get", "d365c", "-n", &ns, "-o", "wide"]));
    let (header, row) = header_and_row(&wide, fixtures::CONNECTION);
    for column in ["URL", "REASON", "SECRET", "MESSAGE"] {
        assert!(header.contains(column), "{column} not in {header}");
    }
    assert!(
        row.contains(fixtures::SECRET) && row.contains(secret_message),
        "{row}"
    );
}
