//! docs/argocd-health.lua, the Argo CD health check for SalesOrderStatus,
//! run in a real Lua 5.1 interpreter (tests/shared/argocd.rs) on the
//! objects the operator writes: the status comes from the operator's own
//! `next_status`, serialised exactly as it is sent to the API server.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sales_order_operator::api::{LastUpdate, ObservedOrder, Reason, SalesOrderStatus};
use sales_order_operator::fixtures::Placed;
use sales_order_operator::reconcile::{Outcome, next_status};
use serde_json::Value;

use crate::argocd_lua::ORDER_SCRIPT;

/// Argo CD's answer for `obj`: (status, message).
fn health(obj: &Value) -> (String, String) {
    crate::argocd_lua::health(ORDER_SCRIPT, obj)
}

fn order(generation: i64) -> SalesOrderStatus {
    SalesOrderStatus::test(145)
        .in_namespace("orders")
        .at_generation(generation)
}

/// The order after `outcomes`, applied in turn by the operator's status
/// function at `generation`; serialised as the API server would store it.
fn after(generation: i64, outcomes: &[Outcome]) -> Value {
    let mut o = order(generation);
    for outcome in outcomes {
        o.status = Some(next_status(
            o.status.as_ref(),
            Some(generation),
            outcome,
            Time(Timestamp::now()),
        ));
    }
    serde_json::to_value(&o).unwrap()
}

fn observed(status: &str) -> ObservedOrder {
    ObservedOrder {
        sales_status: Some(status.into()),
        delivery_date: None,
        etag: Some("W/\"1\"".into()),
    }
}

fn updated() -> Outcome {
    let update = LastUpdate {
        time: "2025-02-08T10:00:00Z".into(),
        from_etag: "W/\"1\"".into(),
        to_etag: Some("W/\"2\"".into()),
        attempts: 2,
        fields: vec!["SalesOrderStatus".into()],
        ..LastUpdate::default()
    };
    Outcome::Updated {
        observed: observed("Delivered"),
        update,
    }
}

fn failed(reason: Reason, message: &str) -> Outcome {
    Outcome::Failed {
        reason,
        message: message.into(),
        observed: None,
    }
}

#[test]
fn ready_orders_are_healthy() {
    for outcomes in [
        vec![Outcome::InSync {
            observed: observed("Delivered"),
        }],
        vec![updated()],
        vec![
            updated(),
            Outcome::InSync {
                observed: observed("Delivered"),
            },
        ],
    ] {
        let obj = after(3, &outcomes);
        let (status, message) = health(&obj);
        assert_eq!(status, "Healthy", "{obj:#}");
        assert!(
            message.starts_with("InSync") || message.starts_with("Updated"),
            "{message}"
        );
    }
}

#[test]
fn transient_failures_are_progressing_with_the_reason() {
    for (reason, text) in [
        (
            Reason::Conflict,
            "412 Precondition Failed: If-Match W/\"1\", current W/\"2\"",
        ),
        (Reason::Throttled, "429: Retry-After 5s"),
        (Reason::Unavailable, "503 Service Unavailable"),
    ] {
        let obj = after(3, &[failed(reason, text)]);
        // Ready=False and Reconciling=True; Stalled is absent.
        assert_eq!(obj["status"]["conditions"].as_array().unwrap().len(), 2);
        let (status, message) = health(&obj);
        assert_eq!(status, "Progressing", "{reason}: {obj:#}");
        assert_eq!(message, format!("{reason}: {text}"));
    }
    // A conflict after a success: Ready flips to False, still progressing.
    let obj = after(3, &[updated(), failed(Reason::Conflict, "409 Conflict")]);
    assert_eq!(health(&obj).0, "Progressing");
}

#[test]
fn stalled_orders_are_degraded_with_the_reason() {
    for reason in Reason::ALL.into_iter().filter(|r| r.is_stalled()) {
        let obj = after(2, &[updated(), failed(reason, "needs a human")]);
        let (status, message) = health(&obj);
        assert_eq!(status, "Degraded", "{reason}: {obj:#}");
        assert_eq!(message, format!("{reason}: needs a human"));
    }
}

#[test]
fn observe_drift_is_degraded_and_suspend_is_suspended() {
    let drift = Outcome::Drifted {
        observed: observed("Backorder"),
        fields: vec!["SalesOrderStatus".into()],
    };
    let (status, message) = health(&after(1, &[drift]));
    assert_eq!(status, "Degraded");
    assert!(message.starts_with("Drifted: Observe policy"), "{message}");
    assert_eq!(
        health(&after(1, &[updated(), Outcome::Suspended])).0,
        "Suspended"
    );
}

#[test]
fn new_or_changed_specs_are_progressing_until_observed() {
    // Never reconciled: no status at all.
    let fresh = serde_json::to_value(order(1)).unwrap();
    assert!(fresh.get("status").is_none());
    assert_eq!(health(&fresh).0, "Progressing");

    // Ready for generation 3, but the spec is now at generation 4: the old
    // Ready=True must not make Argo CD call the new spec healthy.
    let mut obj = after(3, &[updated()]);
    assert_eq!(health(&obj).0, "Healthy");
    obj["metadata"]["generation"] = 4.into();
    let (status, message) = health(&obj);
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 4"), "{message}");

    // A Stalled order whose spec was fixed is Progressing, not Degraded.
    let mut obj = after(3, &[failed(Reason::NotFound, "404")]);
    obj["metadata"]["generation"] = 4.into();
    assert_eq!(health(&obj).0, "Progressing");
}
