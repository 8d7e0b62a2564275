//! Only proven writes count, over real HTTP: no redirect is followed (not
//! for D365, not for the token endpoint), a 200 whose entity still shows
//! other values is not Updated, a write D365 accepts without applying is
//! sent once more and then given up, and a `$batch` answer whose
//! Content-IDs do not match its requests is refused whole.

use std::error::Error as _;
use std::time::Duration;

use d365_emulator::{Emulator, Faults};
use sales_order_operator::api::SalesOrderStatusSpec;
use sales_order_operator::api::{Reason, SalesOrderStatusStatus, SalesStatus};
use sales_order_operator::controller::sync::{Attempt, OrderRules, SyncResult, sync_order};
use sales_order_operator::d365::{BatchSettings, D365Client, D365Error, ETag, NoopObserver};
use sales_order_operator::reconcile::{Outcome, next_status};

use crate::common::*;
use crate::stub::{ELSEWHERE, Mode, Stub};

const ORDER: &str = "SO-2025-0001";

fn client(emu: &Emulator) -> D365Client {
    D365Client::new(settings(emu), std::sync::Arc::new(NoopObserver)).unwrap()
}

#[tokio::test]
async fn no_redirect_is_followed() {
    // Where a followed redirect would land: a D365 that would accept it.
    let elsewhere = emulator(1).await;
    for status in [301, 303, 307, 308] {
        let emu = emulator_with(
            1,
            Faults {
                redirect_status: Some(status),
                redirect_to: elsewhere.url(),
                ..Faults::default()
            },
        )
        .await;
        let client = client(&emu);
        let etag = ETag::parse(&emu_etag(&emu, &key(1))).unwrap();
        let read = client.get_order(&key(1), &[]).await.unwrap_err();
        let write = client
            .patch_order(&key(1), &etag, &changes(&[(STATUS, "Delivered")]))
            .await
            .unwrap_err();
        for err in [read, write] {
            let D365Error::Redirected {
                status: got,
                location,
                ..
            } = &err
            else {
                panic!("{status}: {err:?}")
            };
            assert_eq!(*got, status);
            assert!(
                location.starts_with(&format!("{}/data/SalesOrderHeadersV2(", elsewhere.url())),
                "{location}"
            );
            let text = err.to_string();
            let head = format!("D365 answered {status} redirecting to {location}");
            for needle in [
                head.as_str(),
                "redirects are not followed",
                "check the connection's url",
            ] {
                assert!(text.contains(needle), "{needle:?} in {text}");
            }
            assert!(!err.is_transient(), "a configuration problem: {err}");
        }
        assert!(client_writes(&emu).is_empty());
    }
    assert!(
        data_requests(&elsewhere).is_empty(),
        "{:?}",
        data_requests(&elsewhere)
    );
    assert!(client_writes(&elsewhere).is_empty());
}

#[tokio::test]
async fn a_redirecting_token_endpoint_is_refused_without_quoting_the_query() {
    let stub = Stub::start(Mode::Redirect).await;
    let err = stub.client(None).authenticate().await.unwrap_err();
    let D365Error::Redirected {
        status: 302,
        location,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    let (without_query, _) = ELSEWHERE.split_once('?').unwrap();
    assert_eq!(location, &format!("{without_query}?…"));
    assert!(
        message.contains("token endpoint") && message.contains("authorityUrl"),
        "{message}"
    );
    assert!(!message.contains("stub-secret"), "{message}");
    assert_eq!(stub.token_requests(), 1, "asked once, followed nowhere");
}

fn rules() -> OrderRules {
    OrderRules {
        status_field: STATUS.into(),
        date_field: "ConfirmedReceiptDate".into(),
        final_statuses: vec![SalesStatus::Invoiced, SalesStatus::Canceled],
        capabilities: Default::default(),
    }
}

/// Reconciles order 1 (wanted Delivered by 2025-02-08, generation 1)
/// `times` times as the controller would: each attempt sees the status
/// the last one left.
async fn reconcile(client: &D365Client, times: usize) -> Vec<SyncResult> {
    reconcile_dated(client, times, Some("2025-02-08")).await
}

async fn reconcile_dated(client: &D365Client, times: usize, date: Option<&str>) -> Vec<SyncResult> {
    let mut spec = SalesOrderStatusSpec::test(ORDER, SalesStatus::Delivered);
    spec.delivery_date = date.map(str::to_owned);
    let mut status: Option<SalesOrderStatusStatus> = None;
    let mut results = Vec::new();
    for n in 1..=times {
        let attempt = Attempt::of(n as u32, Some(1), status.as_ref());
        let r = sync_order(client, &rules(), &spec, attempt).await;
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
        status = Some(next_status(status.as_ref(), Some(1), &r.outcome, now));
        results.push(r);
    }
    results
}

/// Each result as (reason, Reconciling, Stalled).
fn summary(results: &[SyncResult]) -> Vec<(Reason, bool, bool)> {
    results
        .iter()
        .map(|r| {
            (
                r.outcome.reason(),
                r.outcome.is_transient(),
                r.outcome.is_stalled(),
            )
        })
        .collect()
}

fn patches(emu: &Emulator) -> usize {
    count(emu, "PATCH")
}

#[tokio::test]
async fn a_200_with_the_old_values_is_not_updated_and_is_given_up_after_one_resend() {
    let emu = emulator_with(
        1,
        Faults {
            patch_returns_entity: true,
            ignore_writes: vec![STATUS.into()],
            ..Faults::default()
        },
    )
    .await;
    let results = reconcile(&client(&emu), 4).await;
    let (retrying, given_up) = (
        (Reason::NotApplied, true, false),
        (Reason::NotApplied, false, true),
    );
    assert_eq!(summary(&results), [retrying, given_up, given_up, given_up]);
    assert_eq!(
        patches(&emu),
        2,
        "the first sending and one resend, then none"
    );
    let Outcome::NotApplied {
        message,
        update: Some(update),
        observed,
        ..
    } = &results[0].outcome
    else {
        panic!("{:?}", results[0])
    };
    assert!(
        message.contains("still shows other values in SalesOrderStatus"),
        "{message}"
    );
    assert_eq!((update.resends, update.generation), (0, Some(1)));
    assert_eq!(
        observed.sales_status.as_deref(),
        Some("Backorder"),
        "what D365 answered"
    );
    let Outcome::NotApplied {
        update: Some(resent),
        ..
    } = &results[1].outcome
    else {
        panic!("{:?}", results[1])
    };
    assert_eq!(resent.resends, 1);
    let Outcome::NotApplied {
        message,
        update: None,
        ..
    } = &results[3].outcome
    else {
        panic!("{:?}", results[3])
    };
    assert!(
        message.contains("2 PATCHes of SalesOrderStatus") && message.contains(&resent.from_etag),
        "{message}"
    );
}

/// A 204 proves nothing: the read after it finds the change not applied,
/// so the order is never Ready; it is sent once more and then given up,
/// two PATCHes whether D365 ignored the whole change (ETag unchanged) or
/// applied part of it (a new ETag, answered or only read back).
#[tokio::test]
async fn a_204_not_applied_is_found_by_the_read_after_it_and_given_up_after_one_resend() {
    let cases = [
        ("status only", false, None),
        ("date applied, new ETag answered", true, Some("2025-02-08")),
        ("date applied, no ETag answered", false, Some("2025-02-08")),
    ];
    for (case, patch_etag_header, date) in cases {
        let want_patches = 2;
        let emu = emulator_with(
            1,
            Faults {
                ignore_writes: vec![STATUS.into()],
                patch_etag_header,
                ..Faults::default()
            },
        )
        .await;
        let results = reconcile_dated(&client(&emu), want_patches + 3, date).await;
        let mut want = vec![(Reason::NotApplied, true, false)];
        want.extend([(Reason::NotApplied, false, true); 4]);
        assert_eq!(summary(&results), want, "{case}: never Updated");
        assert_eq!(patches(&emu), want_patches, "{case}");
        let last = client_writes(&emu).pop().unwrap();
        assert_eq!(
            last.fields.keys().collect::<Vec<_>>(),
            [STATUS],
            "{case}: the resend"
        );
    }
}

#[tokio::test]
async fn a_200_showing_the_values_sent_is_updated() {
    let emu = emulator_with(
        1,
        Faults {
            patch_returns_entity: true,
            ..Faults::default()
        },
    )
    .await;
    let results = reconcile(&client(&emu), 2).await;
    assert_eq!(
        summary(&results),
        [
            (Reason::Updated, false, false),
            (Reason::InSync, false, false)
        ]
    );
    assert_eq!(patches(&emu), 1);
}

/// `$batch` answers for a batch of one PATCH (Content-ID 1).
const MISMATCHED: [&[(Option<&str>, u16)]; 3] = [
    &[(Some("1"), 204), (Some("1"), 412)],
    &[(None, 204)],
    &[(Some("2"), 204)],
];

#[tokio::test]
async fn a_batch_answer_with_mismatched_content_ids_is_refused_whole() {
    let one = Some(BatchSettings {
        max_operations: 1,
        window: Duration::from_millis(1),
    });
    for (parts, why) in
        MISMATCHED
            .into_iter()
            .zip(["more than once", "no Content-ID", "no request"])
    {
        let stub = Stub::start(Mode::Batch(parts)).await;
        let etag = ETag::parse("W/\"e\"").unwrap();
        let err = stub
            .client(one)
            .patch_order(&key(1), &etag, &changes(&[(STATUS, "Delivered")]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, D365Error::InvalidResponse { .. }),
            "{parts:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("answer refused") && text.contains("retried"),
            "{text}"
        );
        assert!(
            err.source().is_some_and(|s| s.to_string().contains(why)),
            "{why}: {err:?}"
        );
        assert_eq!(stub.seen().len(), 1, "one $batch POST");
    }
    // Matched by Content-ID, not by position.
    let stub = Stub::start(Mode::Batch(&[(Some("1"), 204)])).await;
    let done = stub
        .client(one)
        .patch_order(
            &key(1),
            &ETag::parse("W/\"e\"").unwrap(),
            &changes(&[(STATUS, "Delivered")]),
        )
        .await
        .unwrap();
    assert_eq!(done.etag().map(ETag::as_str), Some("W/\"part-1\""));
}

#[tokio::test]
async fn orders_of_a_refused_batch_are_retried_as_not_sent() {
    let stub = Stub::start(Mode::Batch(MISMATCHED[0])).await;
    let client = stub.client(Some(BatchSettings {
        max_operations: 2,
        window: Duration::from_millis(200),
    }));
    let etag = ETag::parse("W/\"e\"").unwrap();
    let patch = |n| {
        let (client, etag) = (client.clone(), etag.clone());
        async move {
            client
                .patch_order(&key(n), &etag, &changes(&[(STATUS, "Delivered")]))
                .await
        }
    };
    let (a, b) = tokio::join!(patch(1), patch(2));
    assert_eq!(stub.seen().len(), 1, "both in one $batch");
    for r in [a, b] {
        let err = r.unwrap_err();
        assert!(matches!(err, D365Error::InvalidResponse { .. }), "{err:?}");
    }
}
