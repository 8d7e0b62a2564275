//! PATCH coalescing into OData `$batch` against the emulator over real
//! loopback HTTP: many concurrent `patch_order` calls leave as a few
//! `$batch` POSTs, each caller gets its own result, and one order's failure
//! does not undo another's write (one changeset per order).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use d365_emulator::{Emulator, Faults, WriteSource};
use futures::future::join_all;
use sales_order_operator::d365::{
    BatchSettings, D365Client, D365Error, ETag, PatchOutcome, RequestKind,
};

fn batching(emu: &Emulator, max_operations: usize, window_ms: u64) -> (D365Client, Arc<Recorder>) {
    let mut s = settings(emu);
    s.batch = Some(BatchSettings {
        max_operations,
        window: Duration::from_millis(window_ms),
    });
    let recorder = Arc::new(Recorder::default());
    (D365Client::new(s, recorder.clone()).unwrap(), recorder)
}

fn batch_posts(emu: &Emulator) -> usize {
    data_requests(emu)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("$batch"))
        .count()
}

/// PATCHes orders `1..=n` concurrently (each with its current ETag), the
/// requisition number set to `batch-<n>`.
async fn patch_all(
    emu: &Emulator,
    client: &D365Client,
    numbers: &[u32],
) -> Vec<Result<PatchOutcome, D365Error>> {
    let calls = numbers.iter().map(|&n| {
        let k = key(n);
        let etag = ETag::parse(&emu_etag(emu, &k)).unwrap();
        let value = format!("batch-{n}");
        async move {
            client
                .patch_order(&k, &etag, &changes(&[(REQUISITION, &value)]))
                .await
        }
    });
    join_all(calls).await
}

#[tokio::test]
async fn concurrent_patches_travel_in_few_batches() {
    let emu = emulator(60).await;
    let (client, recorder) = batching(&emu, 20, 50);
    let numbers: Vec<u32> = (1..=50).collect();
    let results = patch_all(&emu, &client, &numbers).await;
    for (n, r) in numbers.iter().zip(&results) {
        assert!(r.is_ok(), "order {n}: {r:?}");
        assert_eq!(emu_field(&emu, &key(*n), REQUISITION), format!("batch-{n}"));
    }
    let accepted: Vec<_> = emu
        .history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client && w.accepted)
        .collect();
    assert_eq!(accepted.len(), 50);
    for w in &accepted {
        assert!(w.via_batch, "{w:?}");
        assert_eq!(w.if_match.as_deref(), Some(w.etag_before.as_str()), "{w:?}");
    }
    let posts = batch_posts(&emu);
    assert!(
        (3..=5).contains(&posts),
        "{posts} $batch POSTs for 50 PATCHes"
    );
    assert_eq!(count(&emu, "PATCH"), 0, "no single PATCH");
    let events = recorder.events();
    let batch_calls = events
        .iter()
        .filter(|e| e.method == "POST" && e.kind == RequestKind::Batch)
        .count();
    assert_eq!(batch_calls, posts, "one observer event per batch call");
    assert!(!events.iter().any(|e| e.method == "PATCH"));
    assert!(
        !events
            .iter()
            .any(|e| e.method == "POST" && e.kind == RequestKind::Entity)
    );
    let operations = recorder.operations();
    assert_eq!(operations.len(), 50, "one operation event per PATCH");
    assert!(
        operations
            .iter()
            // 200: every operation asks for the entity back (Prefer:
            // return=representation) and the emulator honours it.
            .all(|o| o.method == "PATCH" && o.status == Some(200)),
        "{operations:?}"
    );
}

#[tokio::test]
async fn every_stale_etag_in_a_batch_is_a_conflict() {
    let emu = emulator(10).await;
    emu.set_faults(Faults {
        conflict_rate: 1.0,
        ..Faults::default()
    });
    let (client, _) = batching(&emu, 20, 30);
    let results = patch_all(&emu, &client, &(1..=10).collect::<Vec<_>>()).await;
    for r in &results {
        assert!(
            matches!(
                r,
                Err(D365Error::Conflict {
                    status: 409 | 412,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert!(
        !emu.history()
            .iter()
            .any(|w| w.source == WriteSource::Client && w.accepted),
        "no client write accepted"
    );
    assert!(batch_posts(&emu) >= 1);
    assert_eq!(count(&emu, "PATCH"), 0);
}

#[tokio::test]
async fn one_rejected_order_does_not_undo_the_others() {
    // The emulator stops at the first failed changeset unless asked with
    // `Prefer: odata.continue-on-error`: orders 4 and 5 going through
    // prove the client asks.
    let emu = emulator(5).await;
    invoice(&emu, 3);
    let (client, _) = batching(&emu, 20, 30);
    let results = deliver(&client, &emu, 1..=5).await;
    for (i, r) in results.iter().enumerate() {
        let n = i as u32 + 1;
        if n == 3 {
            match r {
                Err(D365Error::Rejected {
                    status: 400,
                    message,
                }) => {
                    assert!(message.contains("cannot be changed"), "{message}");
                    assert!(message.contains("SO-2025-0003"), "{message}");
                }
                other => panic!("order 3: {other:?}"),
            }
            assert_eq!(emu_field(&emu, &key(n), STATUS), "Invoiced");
        } else {
            assert!(r.is_ok(), "order {n}: {r:?}");
            assert_eq!(emu_field(&emu, &key(n), STATUS), "Delivered");
        }
    }
    assert_eq!(batch_posts(&emu), 1);
}

/// A server that stops at the first failed changeset (the default of
/// ASP.NET OData, and F&O if it ignores `odata.continue-on-error`): the
/// orders after it get no answer, are not sent and not written, and go
/// through when sent again.
#[tokio::test]
async fn operations_a_stopped_batch_leaves_unanswered_are_not_sent() {
    let emu = emulator_with(
        5,
        Faults {
            honour_continue_on_error: false,
            ..Faults::default()
        },
    )
    .await;
    invoice(&emu, 3);
    let (client, recorder) = batching(&emu, 20, 30);
    let results = deliver(&client, &emu, 1..=5).await;
    let mut not_sent = Vec::new();
    for (n, r) in (1..=5).zip(&results) {
        let status = emu_field(&emu, &key(n), STATUS);
        match r {
            Ok(_) => assert_eq!(status, "Delivered", "order {n}"),
            Err(D365Error::Rejected { status: 400, .. }) => assert_eq!(n, 3),
            Err(
                e @ D365Error::Unavailable {
                    status: None,
                    message,
                    ..
                },
            ) => {
                assert!(message.contains("not sent"), "{message}");
                assert!(e.is_transient());
                let number = key(n).sales_order_number;
                let written = emu
                    .history()
                    .iter()
                    .any(|w| w.source == WriteSource::Client && w.sales_order_number == number);
                assert!(!written, "order {n} never reached the store");
                not_sent.push(n);
            }
            other => panic!("order {n}: {other:?}"),
        }
    }
    assert_eq!(not_sent, [4, 5], "{results:?}");
    let mut statuses: Vec<_> = recorder.operations().iter().map(|o| o.status).collect();
    statuses.sort();
    assert_eq!(statuses, [None, None, Some(200), Some(200), Some(400)]);
    let again = deliver(&client, &emu, not_sent.clone()).await;
    assert!(again.iter().all(Result::is_ok), "{again:?}");
    for n in not_sent {
        assert_eq!(emu_field(&emu, &key(n), STATUS), "Delivered");
    }
}

#[tokio::test]
async fn without_batching_each_patch_is_its_own_request() {
    let (emu, client, recorder) = setup(10).await;
    assert!(client.settings().batch.is_none(), "off by default");
    let results = patch_all(&emu, &client, &(1..=10).collect::<Vec<_>>()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(count(&emu, "PATCH"), 10);
    assert_eq!(batch_posts(&emu), 0);
    assert!(emu.history().iter().all(|w| !w.via_batch));
    assert!(
        !recorder
            .events()
            .iter()
            .any(|e| e.method == "POST" && e.kind != RequestKind::Token)
    );
    assert!(recorder.operations().is_empty());
}

#[tokio::test]
async fn a_failed_batch_call_fails_every_operation_in_it() {
    let emu = emulator(5).await;
    let (client, _) = batching(&emu, 20, 10);
    // Fetch a token first, so the injected errors hit the batch itself.
    client.authenticate().await.unwrap();
    emu.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    let results = patch_all(&emu, &client, &[1, 2, 3]).await;
    for r in &results {
        assert!(
            matches!(
                r,
                Err(D365Error::Unavailable {
                    status: Some(503),
                    ..
                })
            ),
            "{r:?}"
        );
    }
    assert_eq!(batch_posts(&emu), 1);
    assert!(
        emu.history()
            .iter()
            .all(|w| w.source != WriteSource::Client)
    );

    emu.set_faults(Faults {
        max_rps: Some(0),
        ..Faults::default()
    });
    let results = patch_all(&emu, &client, &[1, 2, 3]).await;
    for r in &results {
        assert!(matches!(r, Err(D365Error::Throttled { .. })), "{r:?}");
    }
    assert!(client.paused_for().is_some(), "a 429 pauses the connection");
}

#[tokio::test]
async fn a_401_on_the_batch_refreshes_the_token_once() {
    let emu = emulator(5).await;
    let (client, _) = batching(&emu, 20, 10);
    client.authenticate().await.unwrap();
    assert_eq!(emu.token_requests(), 1);
    emu.revoke_tokens();
    let results = patch_all(&emu, &client, &[1, 2, 3]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(emu.token_requests(), 2);
    assert_eq!(batch_posts(&emu), 2, "the refused batch and its resend");
}

#[tokio::test]
async fn a_pause_empties_the_queue_at_once_and_queues_nothing_while_it_lasts() {
    let emu = emulator(5).await;
    // A window far longer than the test may take: only the pause flushes.
    let (client, _) = batching(&emu, 20, 5_000);
    client.authenticate().await.unwrap();
    emu.set_faults(Faults {
        throttle_retry_after: Some(60),
        ..Faults::default()
    });
    let started = Instant::now();
    // The PATCHes queue first; a collection read's 429 then pauses the
    // connection (an order read would wait for the window too).
    let mut pages = client.order_pages(&[], None).unwrap();
    let (queued, get) = tokio::join!(patch_all(&emu, &client, &[1, 2, 3]), pages.next_page());
    assert!(matches!(get, Err(D365Error::Throttled { .. })), "{get:?}");
    let refused = patch_all(&emu, &client, &[1, 2]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the window or the pause: {:?}",
        started.elapsed()
    );
    for r in queued.iter().chain(&refused) {
        match r {
            Err(e @ D365Error::Throttled { retry_after, .. }) => {
                assert!(*retry_after > Duration::from_secs(55), "{e}");
                assert!(e.to_string().contains("not sent"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(batch_posts(&emu), 0, "no batch left during the pause");
}

/// Order `n` invoiced by someone else: a final status no PATCH may leave.
fn invoice(emu: &d365_emulator::Emulator, n: u32) {
    let k = key(n);
    emu.external_write(
        &k.data_area_id,
        &k.sales_order_number,
        changes(&[(STATUS, "Invoiced")]),
    )
    .expect("order invoiced");
}

/// Orders `numbers` asked Delivered at once, each with its current ETag.
async fn deliver(
    client: &D365Client,
    emu: &Emulator,
    numbers: impl IntoIterator<Item = u32>,
) -> Vec<Result<PatchOutcome, D365Error>> {
    let calls = numbers.into_iter().map(|n| {
        let k = key(n);
        let etag = ETag::parse(&emu_etag(emu, &k)).unwrap();
        async move {
            client
                .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
                .await
        }
    });
    join_all(calls).await
}

/// Late binding: PATCHes that arrive while the batch's waiter waits for
/// the limiter (1 request/s, spent by a first batch) all leave in the
/// batch it was waiting for, not in the few its window alone would make.
#[tokio::test]
async fn patches_that_queue_while_the_budget_waits_share_one_batch() {
    let emu = emulator(20).await;
    let client = one_request_a_second(&emu);
    patch_all(&emu, &client, &[1]).await[0].as_ref().unwrap();
    assert_eq!(batch_posts(&emu), 1);
    let calls = (2..=10u32).map(|n| {
        let (client, emu) = (&client, &emu);
        async move {
            tokio::time::sleep(Duration::from_millis(20 * u64::from(n - 2))).await;
            patch_all(emu, client, &[n]).await.remove(0)
        }
    });
    for (n, r) in (2..=10).zip(join_all(calls).await) {
        assert!(r.is_ok(), "order {n}: {r:?}");
    }
    assert_eq!(batch_posts(&emu), 2, "the nine PATCHes in one batch");
}
