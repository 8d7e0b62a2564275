//! The write fence seen from D365's side: a client whose fence is closed
//! still reads but sends no PATCH and no `$batch`; the check happens after
//! any limiter wait, right before the request leaves; every request names
//! its replica in the User-Agent the emulator's journal keeps.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use d365_emulator::Emulator;
use sales_order_operator::d365::{
    BatchSettings, D365Client, D365Error, Fence, Fenced, RequestKind, Writer,
};
use tokio::time::Instant;

const AGENT: &str = concat!(
    "sales-order-operator/",
    env!("CARGO_PKG_VERSION"),
    " (replica-x)"
);

fn fenced_client(emu: &Emulator, fence: &Fence, batch: bool) -> (D365Client, Arc<Recorder>) {
    let mut s = settings(emu);
    s.writer = Writer {
        replica: Some("replica-x".into()),
        fence: fence.clone(),
    };
    if batch {
        s.batch = Some(BatchSettings {
            max_operations: 10,
            window: Duration::from_millis(5),
        });
    }
    let recorder = Arc::new(Recorder::default());
    (D365Client::new(s, recorder.clone()).unwrap(), recorder)
}

fn entity_writes(recorder: &Recorder) -> usize {
    recorder
        .events()
        .iter()
        .filter(|e| e.kind != RequestKind::Token && e.method != "GET")
        .count()
}

#[tokio::test]
async fn a_closed_fence_sends_no_write_single_or_batched() {
    for batch in [false, true] {
        let emu = emulator(2).await;
        let fence = Fence::leased(Duration::from_secs(30));
        let (client, recorder) = fenced_client(&emu, &fence, batch);
        let k = key(1);
        let write = |etag| {
            let client = client.clone();
            let k = k.clone();
            async move {
                client
                    .patch_order(&k, &etag, &changes(&[(STATUS, "Delivered")]))
                    .await
            }
        };

        // Never renewed: reads go, the write does not.
        let entity = client.get_order(&k, &[STATUS]).await.unwrap();
        let refused = write(entity.etag.clone()).await.unwrap_err();
        assert!(
            matches!(refused, D365Error::Fenced(Fenced::NeverAcquired)),
            "batch {batch}: {refused:?}"
        );
        assert!(refused.is_transient() && refused.status_code().is_none());
        assert_eq!(
            count(&emu, "PATCH") + count(&emu, "POST"),
            0,
            "batch {batch}"
        );
        assert_eq!(entity_writes(&recorder), 0, "a refused write is no request");

        // Renewed: the write goes, naming the replica.
        fence.renewed(Instant::now());
        write(entity.etag.clone()).await.unwrap();
        let writes = client_writes(&emu);
        assert_eq!(writes.len(), 1, "batch {batch}");
        assert!(writes[0].accepted && writes[0].via_batch == batch);
        assert_eq!(writes[0].agent.as_deref(), Some(AGENT));

        // Revoked (lost or released): refused again, for good.
        fence.revoke();
        let fresh = client.get_order(&k, &[STATUS]).await.unwrap();
        let refused = write(fresh.etag).await.unwrap_err();
        assert!(
            matches!(refused, D365Error::Fenced(Fenced::Revoked)),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("not the leader any more"),
            "{refused}"
        );
        assert_eq!(client_writes(&emu).len(), 1, "batch {batch}");
    }
}

#[tokio::test]
async fn the_fence_is_checked_after_the_limiter_wait() {
    let emu = emulator(2).await;
    let fence = Fence::leased(Duration::from_millis(400));
    let mut s = settings(&emu);
    s.max_requests_per_second = 1;
    s.writer.fence = fence.clone();
    let client = D365Client::new(s, Arc::new(Recorder::default())).unwrap();
    let k = key(1);
    // The GET takes the second's only permit; the PATCH right after waits
    // about a second for the next, and the fence closes meanwhile.
    let entity = client.get_order(&k, &[STATUS]).await.unwrap();
    fence.renewed(Instant::now());
    assert_eq!(fence.check(), Ok(()), "open when the write starts");
    let started = Instant::now();
    let refused = client
        .patch_order(&k, &entity.etag, &changes(&[(STATUS, "Delivered")]))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the write waited for the limiter ({:?})",
        started.elapsed()
    );
    assert!(
        matches!(refused, D365Error::Fenced(Fenced::Expired { .. })),
        "{refused:?}"
    );
    assert_eq!(count(&emu, "PATCH"), 0);
    assert!(client_writes(&emu).is_empty());
}
