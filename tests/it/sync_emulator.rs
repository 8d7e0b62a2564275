//! One reconcile attempt (`sync_order`: GET, plan, maybe PATCH) against the
//! D365 emulator over loopback HTTP: the request counts and the condition
//! reason of every D365 answer the operator must handle.

use std::sync::Arc;
use std::time::Duration;

use d365_emulator::{Emulator, Faults};
use sales_order_operator::api::{Policy, Reason, SalesOrderStatusSpec, SalesStatus};
use sales_order_operator::controller::sync::{Attempt, OrderRules, SyncResult, sync_order};
use sales_order_operator::d365::{D365Client, NoopObserver};

use crate::common::{emulator_with, settings};
use sales_order_operator::reconcile::Outcome;
use serde_json::json;

async fn setup(faults: Faults) -> (Emulator, D365Client) {
    let emu = emulator_with(5, faults).await;
    let mut settings = settings(&emu);
    settings.request_timeout = Duration::from_secs(2);
    settings.max_requests_per_second = 1000;
    let client = D365Client::new(settings, Arc::new(NoopObserver)).unwrap();
    (emu, client)
}

fn rules() -> OrderRules {
    OrderRules {
        status_field: "SalesOrderStatus".into(),
        date_field: "ConfirmedReceiptDate".into(),
        final_statuses: vec![SalesStatus::Invoiced, SalesStatus::Canceled],
        capabilities: Default::default(),
    }
}

fn spec(number: &str, status: SalesStatus) -> SalesOrderStatusSpec {
    SalesOrderStatusSpec::test(number, status)
}

/// One attempt for order `number` wanted in `status`.
async fn sync(client: &D365Client, number: &str, status: SalesStatus, attempt: u32) -> SyncResult {
    sync_order(
        client,
        &rules(),
        &spec(number, status),
        Attempt::new(attempt),
    )
    .await
}

/// (GETs, PATCHes) the emulator saw for an order.
fn counts(emu: &Emulator, number: &str) -> (usize, usize) {
    let reqs = emu.requests();
    let of = |m: &str| {
        reqs.iter()
            .filter(|r| r.method == m && r.sales_order_number.as_deref() == Some(number))
            .count()
    };
    (of("GET"), of("PATCH"))
}

fn reason(r: &SyncResult) -> Reason {
    r.outcome.reason()
}

/// A changed order: GET, then PATCH; where D365 answers it with the entity
/// (`Prefer: return=representation` honoured) that proves the write,
/// otherwise a GET after the 204 does. In sync afterwards: one GET.
async fn changed_then_in_sync(faults: Faults, gets_for_the_write: usize) {
    let (emu, client) = setup(faults).await;
    let first = sync(&client, "SO-2025-0001", SalesStatus::Delivered, 1).await;
    let Outcome::Updated { update, observed } = &first.outcome else {
        panic!("{first:?}")
    };
    assert_eq!(counts(&emu, "SO-2025-0001"), (gets_for_the_write, 1));
    assert_eq!(
        update.fields,
        vec!["ConfirmedReceiptDate", "SalesOrderStatus"]
    );
    assert_eq!(observed.sales_status.as_deref(), Some("Delivered"));
    let entity = emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(entity["SalesOrderStatus"], "Delivered");
    assert_eq!(entity["ConfirmedReceiptDate"], "2025-02-08T12:00:00Z");
    let history = emu.history();
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].if_match.as_deref(),
        Some(update.from_etag.as_str()),
        "PATCH carried the GET's ETag"
    );
    assert!(history[0].accepted);
    assert_eq!(
        update.to_etag.as_deref(),
        history[0].etag_after.as_deref(),
        "the new version, from the answer or read back after the 204"
    );
    assert_eq!(observed.etag, update.to_etag);

    let second = sync(&client, "SO-2025-0001", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&second), Reason::InSync);
    assert_eq!(
        counts(&emu, "SO-2025-0001"),
        (gets_for_the_write + 1, 1),
        "in sync costs exactly one GET"
    );
}

#[tokio::test]
async fn changed_order_takes_a_get_and_a_patch_answered_with_the_entity() {
    changed_then_in_sync(Faults::default(), 1).await;
}

#[tokio::test]
async fn changed_order_takes_a_proving_get_when_the_patch_answers_204() {
    let faults = Faults {
        honour_return_representation: false,
        ..Faults::default()
    };
    changed_then_in_sync(faults, 2).await;
}

#[tokio::test]
async fn conflicts_412_and_409_then_success_with_the_fresh_etag() {
    for status in [412u16, 409] {
        let (emu, client) = setup(Faults {
            conflict_rate: 1.0,
            conflict_status: status,
            ..Faults::default()
        })
        .await;
        let first = sync(&client, "SO-2025-0002", SalesStatus::Delivered, 1).await;
        assert_eq!(reason(&first), Reason::Conflict, "{status}: {first:?}");
        let Outcome::Failed { message, .. } = &first.outcome else {
            unreachable!()
        };
        assert!(
            message.contains("W/\""),
            "conflict message names the ETag: {message}"
        );

        emu.set_faults(Faults::default());
        let second = sync(&client, "SO-2025-0002", SalesStatus::Delivered, 2).await;
        let Outcome::Updated { update, .. } = &second.outcome else {
            panic!("{second:?}")
        };
        assert_eq!(update.attempts, 2);
        let history = emu.history();
        let refused: Vec<_> = history.iter().filter(|w| !w.accepted).collect();
        let accepted: Vec<_> = history
            .iter()
            .filter(|w| w.accepted && w.source == d365_emulator::WriteSource::Client)
            .collect();
        assert_eq!(refused.len(), 1, "{status}: one refused write");
        assert_eq!(refused[0].status, status);
        assert_eq!(accepted.len(), 1);
        assert_ne!(
            accepted[0].if_match, refused[0].if_match,
            "the stale ETag is never reused"
        );
        assert_eq!(
            accepted[0].if_match.as_deref(),
            Some(accepted[0].etag_before.as_str())
        );
        // The simulated concurrent writer's edit of an unmanaged field survives.
        let writer = history
            .iter()
            .find(|w| w.source == d365_emulator::WriteSource::ConcurrentWriter)
            .expect("concurrent write recorded");
        let entity = emu.order("usmf", "SO-2025-0002").unwrap();
        for (field, value) in &writer.fields {
            assert_eq!(&entity[field], value, "concurrent edit of {field} lost");
        }
    }
}

#[tokio::test]
async fn external_edit_between_get_and_patch_is_not_lost() {
    let (emu, client) = setup(Faults::default()).await;
    emu.external_write(
        "usmf",
        "SO-2025-0003",
        json!({"CustomerRequisitionNumber": "PO-777"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let r = sync(&client, "SO-2025-0003", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&r), Reason::Updated);
    let entity = emu.order("usmf", "SO-2025-0003").unwrap();
    assert_eq!(entity["CustomerRequisitionNumber"], "PO-777");
    let patch = emu
        .history()
        .into_iter()
        .find(|w| w.source == d365_emulator::WriteSource::Client)
        .unwrap();
    assert!(
        !patch.fields.contains_key("CustomerRequisitionNumber"),
        "only changed fields are sent"
    );
}

#[tokio::test]
async fn stalled_reasons_send_no_write_or_no_retry() {
    let (emu, client) = setup(Faults {
        read_only_companies: vec!["usmf".into()],
        ..Faults::default()
    })
    .await;
    let forbidden = sync(&client, "SO-2025-0001", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&forbidden), Reason::Forbidden);
    assert!(forbidden.outcome.reason().is_stalled());
    assert_eq!(
        counts(&emu, "SO-2025-0001"),
        (1, 1),
        "one GET, one refused PATCH, no retry inside"
    );

    let missing = sync(&client, "SO-2099-9999", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&missing), Reason::NotFound);
    assert_eq!(counts(&emu, "SO-2099-9999"), (1, 0));

    emu.set_faults(Faults::default());
    emu.external_write(
        "usmf",
        "SO-2025-0004",
        json!({"SalesOrderStatus": "Invoiced"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let invalid = sync(&client, "SO-2025-0004", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&invalid), Reason::InvalidTransition);
    assert_eq!(
        counts(&emu, "SO-2025-0004"),
        (1, 0),
        "refused without a PATCH"
    );
}

#[tokio::test]
async fn rejected_write_carries_d365_message() {
    let (emu, client) = setup(Faults::default()).await;
    emu.external_write(
        "usmf",
        "SO-2025-0005",
        json!({"SalesOrderStatus": "Canceled"})
            .as_object()
            .unwrap()
            .clone(),
    );
    // With no final statuses in the operator's table, the write goes out and
    // D365's own business validation (400 AxODataWriteException) refuses it.
    let mut lenient = rules();
    lenient.final_statuses.clear();
    let r = sync_order(
        &client,
        &lenient,
        &spec("SO-2025-0005", SalesStatus::Delivered),
        Attempt::new(1),
    )
    .await;
    let Outcome::Failed {
        reason, message, ..
    } = &r.outcome
    else {
        panic!("{r:?}")
    };
    assert_eq!(*reason, Reason::Rejected);
    assert!(message.contains("400"), "{message}");
    assert!(
        message.to_lowercase().contains("canceled") || message.contains("Write failed"),
        "D365's text: {message}"
    );
}

#[tokio::test]
async fn throttling_and_outages_are_transient_with_retry_after() {
    let (emu, client) = setup(Faults {
        max_rps: Some(1),
        ..Faults::default()
    })
    .await;
    let mut saw_throttle = None;
    for n in 1..=5 {
        let r = sync(
            &client,
            &format!("SO-2025-000{n}"),
            SalesStatus::Backorder,
            1,
        )
        .await;
        if reason(&r) == Reason::Throttled {
            saw_throttle = Some(r);
            break;
        }
    }
    let r = saw_throttle.expect("a 429 within 5 quick reads at 1 rps");
    assert!(
        r.retry_after.is_some_and(|d| d >= Duration::from_secs(1)),
        "{r:?}"
    );
    assert!(
        client.paused_for().is_some(),
        "the whole connection pauses: {r:?} {:?}",
        client.paused_for()
    );

    let (emu2, client2) = setup(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    })
    .await;
    let r = sync(&client2, "SO-2025-0001", SalesStatus::Delivered, 1).await;
    assert_eq!(reason(&r), Reason::Unavailable);
    assert!(reason(&r).is_transient());
    drop((emu, emu2));
}

#[tokio::test]
async fn suspended_and_observe_never_write() {
    let (emu, client) = setup(Faults::default()).await;
    let mut s = spec("SO-2025-0001", SalesStatus::Delivered);
    s.suspend = true;
    assert_eq!(
        reason(&sync_order(&client, &rules(), &s, Attempt::new(1)).await),
        Reason::Suspended
    );
    assert_eq!(
        counts(&emu, "SO-2025-0001"),
        (0, 0),
        "suspend sends nothing"
    );
    s.suspend = false;
    s.policy = Policy::Observe;
    let r = sync_order(&client, &rules(), &s, Attempt::new(1)).await;
    let Outcome::Drifted { fields, .. } = &r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(
        fields,
        &vec![
            "ConfirmedReceiptDate".to_string(),
            "SalesOrderStatus".to_string()
        ]
    );
    assert_eq!(counts(&emu, "SO-2025-0001"), (1, 0));
    assert!(emu.history().is_empty());
}

#[tokio::test]
async fn expired_token_is_refreshed_once() {
    let (emu, client) = setup(Faults::default()).await;
    assert_eq!(
        reason(&sync(&client, "SO-2025-0001", SalesStatus::Backorder, 1).await),
        Reason::Updated
    );
    let tokens = emu.token_requests();
    emu.revoke_tokens();
    assert_eq!(
        reason(&sync(&client, "SO-2025-0001", SalesStatus::Backorder, 1).await),
        Reason::InSync
    );
    assert_eq!(
        emu.token_requests(),
        tokens + 1,
        "exactly one refresh after the 401"
    );
}

#[tokio::test]
async fn a_409_hiding_a_permission_problem_keeps_the_etag_still() {
    let faults = Faults {
        read_only_companies: vec!["usmf".into()],
        forbidden_as_conflict: true,
        ..Faults::default()
    };
    let (emu, client) = setup(faults).await;
    let first = sync(&client, "SO-2025-0001", SalesStatus::Delivered, 1).await;
    let second = sync(&client, "SO-2025-0001", SalesStatus::Delivered, 2).await;
    assert_eq!(
        (reason(&first), reason(&second)),
        (Reason::Conflict, Reason::Conflict)
    );
    // What the controller keys on: the same ETag at both conflicts.
    let status = sales_order_operator::reconcile::next_status(
        None,
        Some(1),
        &first.outcome,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    assert!(sales_order_operator::reconcile::conflict_without_writer(
        Some(&status),
        &second.outcome
    ));
    assert!(
        emu.history().iter().all(|w| !w.accepted),
        "nothing was written"
    );
}
