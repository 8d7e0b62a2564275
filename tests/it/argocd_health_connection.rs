//! docs/argocd-health-connection.lua, the Argo CD health check for
//! D365Connection, run in Lua 5.1 (tests/shared/argocd.rs) on connections
//! whose status comes from the operator's own `ready_status`.

use sales_order_operator::api::{D365Connection, D365ConnectionStatus, Reason};
use sales_order_operator::controller::ready_status;
use sales_order_operator::fixtures::Placed;
use serde_json::Value;

use crate::argocd_lua::{CONNECTION_SCRIPT, health};

/// Connection `usmf` at `generation` after a check with this verdict,
/// serialised as the API server stores it.
fn checked(generation: i64, ready: bool, reason: Reason) -> Value {
    let mut conn = D365Connection::test("https://contoso.example").in_namespace("orders");
    conn.metadata.generation = Some(generation);
    conn.status = Some(ready_status(
        &D365ConnectionStatus::default(),
        ready,
        reason,
        "what the check found",
        Some(generation),
    ));
    serde_json::to_value(&conn).unwrap()
}

#[test]
fn every_verdict_reads_as_the_table_says() {
    for (ready, reason, want) in [
        (true, Reason::Authenticated, "Healthy"),
        (true, Reason::MetadataUnavailable, "Healthy"),
        (false, Reason::Unavailable, "Progressing"),
        (false, Reason::SecretNotFound, "Degraded"),
        (false, Reason::Unauthorized, "Degraded"),
        (false, Reason::ConnectionNotReady, "Degraded"),
        (false, Reason::FieldNotFound, "Degraded"),
        (false, Reason::FieldNotEditable, "Degraded"),
        (false, Reason::EntitySetNotFound, "Degraded"),
    ] {
        let obj = checked(2, ready, reason);
        let (status, message) = health(CONNECTION_SCRIPT, &obj);
        assert_eq!(status, want, "{reason}: {obj:#}");
        assert_eq!(message, format!("{reason}: what the check found"));
    }
}

#[test]
fn unchecked_connections_are_progressing() {
    let mut fresh = serde_json::to_value(D365Connection::test("https://contoso.example")).unwrap();
    assert!(fresh.get("status").is_none());
    assert_eq!(health(CONNECTION_SCRIPT, &fresh).0, "Progressing");
    // What the API server's default makes of a new object's status.
    fresh["status"] = serde_json::json!({"observedGeneration": 0});
    fresh["metadata"]["generation"] = 1.into();
    assert_eq!(health(CONNECTION_SCRIPT, &fresh).0, "Progressing");

    // Checked at generation 1, the spec now at 2: neither the old Healthy
    // nor an old Degraded holds for the new spec.
    for (ready, reason) in [(true, Reason::Authenticated), (false, Reason::Unauthorized)] {
        let mut obj = checked(1, ready, reason);
        obj["metadata"]["generation"] = 2.into();
        let (status, message) = health(CONNECTION_SCRIPT, &obj);
        assert_eq!(status, "Progressing", "{reason}");
        assert!(message.contains("generation 2"), "{message}");
    }
}
