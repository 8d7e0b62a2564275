//! The Events of a run, as `kubectl describe` lists them: one per
//! transition however often the operator looks again (resyncs and stalled
//! rechecks every second here), events for Drifted, Suspended and a
//! connection without its Secret, and no placeholder text.

use std::collections::BTreeMap;
use std::time::Duration;

use d365_emulator::Faults;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use sales_order_operator::api::{D365Connection, RECONCILE_REQUESTED_AT, SalesOrderStatus};
use sales_order_operator::fixtures::{CONNECTION, Placed};
use sales_order_operator::reconcile::FAST_RETRIES;
use serde_json::json;

use crate::json_lines::parse_strict;
use crate::support::{Env, Operator, create_connection, create_orders, env, wait_reason};

/// (kind, object name, reason) → (type, notes), each note once per
/// occurrence (an Event's series counts repeats).
type Seen = BTreeMap<(String, String, String), (String, Vec<String>)>;

async fn events(env: &Env) -> Seen {
    let api: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let mut seen = Seen::new();
    for e in api
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
    {
        let regarding = e.regarding.unwrap_or_default();
        let key = (
            regarding.kind.unwrap_or_default(),
            regarding.name.unwrap_or_default(),
            e.reason.unwrap_or_default(),
        );
        let count = e.series.map_or(1, |s| s.count);
        let entry = seen
            .entry(key)
            .or_insert((e.type_.unwrap_or_default(), vec![]));
        for _ in 0..count {
            entry.1.push(e.note.clone().unwrap_or_default());
        }
    }
    seen
}

/// JSON log lines of `order` (D365 key) with this message and reason.
fn logged(log: &str, order: &str, message: &str, reason: &str) -> usize {
    log.lines()
        .filter_map(|l| parse_strict(l).ok())
        .filter(|l| {
            let f = &l["fields"];
            f["order"] == order && f["message"] == message && f["reason"] == reason
        })
        .count()
}

/// Each object and the one Event (kind, name, reason, type) its situation
/// makes.
const EXPECTED: [(&str, &str, &str, &str); 8] = [
    ("SalesOrderStatus", "so-2025-0001", "Updated", "Normal"),
    ("SalesOrderStatus", "so-2025-0002", "Drifted", "Warning"),
    ("SalesOrderStatus", "so-2025-0003", "Suspended", "Normal"),
    ("SalesOrderStatus", "so-2025-0004", "NotFound", "Warning"),
    (
        "SalesOrderStatus",
        "so-2025-0005",
        "SecretNotFound",
        "Warning",
    ),
    ("SalesOrderStatus", "conflicting", "Conflict", "Warning"),
    ("D365Connection", "nosecret", "SecretNotFound", "Warning"),
    ("D365Connection", CONNECTION, "Authenticated", "Normal"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_per_transition_with_drift_suspension_and_connection_failures() {
    let (env, operator) = start().await;
    for (_, name, reason, _) in EXPECTED.iter().filter(|e| e.0 == "SalesOrderStatus") {
        wait_reason(&env, name, reason).await;
    }
    repeat_every_situation(&env, &operator).await;

    // Events are published in the background: wait for all of them.
    let seen = testkit::wait_for(Duration::from_secs(30), || async {
        let seen = events(&env).await;
        let all = EXPECTED
            .iter()
            .all(|(kind, name, reason, _)| seen.contains_key(&key(kind, name, reason)));
        all.then_some(seen)
    })
    .await;
    let Ok(seen) = seen else {
        panic!("events missing; seen {:#?}", events(&env).await);
    };
    check_events(&seen);
}

fn key(kind: &str, name: &str, reason: &str) -> (String, String, String) {
    (kind.into(), name.into(), reason.into())
}

/// An emulator with an order of read-only company USRT (its refused writes
/// answer 409: a conflict that never ends), a connection without its
/// Secret, an order for each situation, and the operator looking again
/// every second.
async fn start() -> (Env, Operator) {
    let faults = Faults {
        read_only_companies: vec!["usrt".into()],
        forbidden_as_conflict: true,
        ..Faults::default()
    };
    let env = env("events", 5, faults).await;
    env.emu.put_order(json!({
        "dataAreaId": "usrt", "SalesOrderNumber": "SO-RT-1", "SalesOrderStatus": "Backorder"
    }));
    let mut lost = D365Connection::test(&env.emu.url()).named("nosecret");
    if let Some(secret) = lost.spec.auth.client_secret_ref.as_mut() {
        secret.name = "no-such-secret".into();
    }
    create_connection(&env.client, &env.ns, lost).await;
    let orders = [
        SalesOrderStatus::test(1),
        SalesOrderStatus::test(2).observing(),
        SalesOrderStatus::test(3).suspended(),
        SalesOrderStatus::test(4).for_order("USMF", "SO-9999-9999"),
        SalesOrderStatus::test(5).via("nosecret"),
        SalesOrderStatus::test(6)
            .named("conflicting")
            .for_order("USRT", "SO-RT-1"),
    ];
    create_orders(&env.client, &env.ns, orders).await;
    let every_second = [
        "--resync-interval",
        "1s",
        "--stalled-recheck",
        "1s",
        "--conflict-backoff-cap",
        "1s",
    ];
    let operator = env.operator(&every_second);
    (env, operator)
}

/// Exactly the expected Event per object, once, with no placeholder text;
/// the notes say what happened.
fn check_events(seen: &Seen) {
    for (kind, name, reason, type_) in EXPECTED {
        let of_object: Vec<_> = seen
            .iter()
            .filter(|((k, n, _), _)| k == kind && n == name)
            .collect();
        let (found_type, notes) = &seen[&key(kind, name, reason)];
        assert_eq!(found_type, type_, "{kind} {name} {reason}");
        assert_eq!(
            notes.len(),
            1,
            "{name}: one event per transition: {notes:?}"
        );
        assert_eq!(
            of_object.len(),
            1,
            "{kind} {name}: only {reason}: {of_object:#?}"
        );
    }
    for ((kind, name, reason), (_, notes)) in seen {
        for note in notes {
            let placeholder = note.trim().is_empty()
                || note.contains("-> ?")
                || note.contains("(?)")
                || note.ends_with('?');
            assert!(!placeholder, "{kind} {name} {reason}: {note:?}");
        }
    }
    let conflict = &seen[&key("SalesOrderStatus", "conflicting", "Conflict")].1[0];
    let attempt = format!("attempt {}", FAST_RETRIES + 1);
    assert!(conflict.contains(&attempt), "{conflict}");
    let updated = &seen[&key("SalesOrderStatus", "so-2025-0001", "Updated")].1[0];
    assert!(
        updated.contains("If-Match W/\"") && updated.contains("new ETag W/\""),
        "{updated}"
    );
}

/// Makes every situation repeat: resyncs and rechecks run every second,
/// the suspended order is asked twice to reconcile, and the connection
/// without its Secret gets a new generation (checked again).
async fn repeat_every_situation(env: &Env, operator: &Operator) {
    let orders = env.orders();
    for at in ["1", "2"] {
        let poke = json!({"metadata": {"annotations": {RECONCILE_REQUESTED_AT: at}}});
        orders
            .patch(
                "so-2025-0003",
                &PatchParams::default(),
                &Patch::Merge(&poke),
            )
            .await
            .expect("annotate");
    }
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let respec = json!({"spec": {"maxRequestsPerSecond": 400}});
    conns
        .patch("nosecret", &PatchParams::default(), &Patch::Merge(&respec))
        .await
        .expect("patch connection");
    let missing = || async {
        let log = operator.logs();
        let rechecked = conns
            .get("nosecret")
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "Ready"
                        && c.observed_generation == Some(2)
                        && c.reason == "SecretNotFound"
                })
            });
        let checks = [
            ("the connection rechecked", rechecked),
            (
                "SO-2025-0001 read 4 times",
                env.requests_for("SO-2025-0001") >= 4,
            ),
            (
                "SO-2025-0002 read 4 times",
                env.requests_for("SO-2025-0002") >= 4,
            ),
            (
                "SO-9999-9999 read 4 times",
                env.requests_for("SO-9999-9999") >= 4,
            ),
            // GET + PATCH per attempt: past the fast retries, and again.
            (
                "SO-RT-1 past its fast retries and again",
                env.requests_for("SO-RT-1") >= 2 * (FAST_RETRIES as usize + 3),
            ),
            (
                "the suspended order reconciled 3 times",
                logged(&log, "USMF/SO-2025-0003", "order reconciled", "Suspended") >= 3,
            ),
            (
                "the order without a Secret reconciled 3 times",
                logged(
                    &log,
                    "USMF/SO-2025-0005",
                    "order not in sync",
                    "SecretNotFound",
                ) >= 3,
            ),
        ];
        checks
            .iter()
            .filter(|(_, met)| !met)
            .map(|(what, _)| *what)
            .collect::<Vec<_>>()
    };
    let repeated = testkit::wait_for(Duration::from_secs(60), || async {
        missing().await.is_empty().then_some(())
    })
    .await;
    if repeated.is_err() {
        panic!(
            "every situation seen again several times; still missing after 60 s: {:?}",
            missing().await
        );
    }
}

/// The operator's own recorder on the real API server: a repeat (same
/// type, action, reason and object, another note) is a PATCH of the first
/// Event's series, not a second Event; another reason is a new Event.
#[tokio::test]
async fn a_repeated_event_counts_in_its_series() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event as Spec, EventType, Reporter};
    use sales_order_operator::controller::recorder::Recorder;

    let cp = testkit::control_plane().await;
    let ns = cp.namespace("recorder").await;
    let reporter = Reporter {
        controller: "recorder-test".into(),
        instance: None,
    };
    let recorder = Recorder::new(cp.client(), reporter, Default::default());
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        namespace: Some(ns.clone()),
        name: Some("cm".into()),
        uid: Some("uid-1".into()),
        ..ObjectReference::default()
    };
    let spec = |reason: &str, note: &str| Spec {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    for (reason, note) in [
        ("Conflict", "one"),
        ("Conflict", "two"),
        ("Conflict", "three"),
        ("Throttled", "four"),
    ] {
        recorder
            .publish(&spec(reason, note), &regarding)
            .await
            .expect("publish");
    }
    let api: Api<Event> = Api::namespaced(cp.client(), &ns);
    let mut seen: Vec<(String, Option<i32>, String)> = api
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .map(|e| {
            (
                e.reason.unwrap_or_default(),
                e.series.map(|s| s.count),
                e.note.unwrap_or_default(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("Conflict".into(), Some(3), "one".into()),
            ("Throttled".into(), None, "four".into()),
        ]
    );
}
