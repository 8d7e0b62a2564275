use std::time::Duration;

use futures::FutureExt;
use tokio::time::{Instant, advance};

use super::*;

const VALIDITY: Duration = Duration::from_secs(4);
const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn an_open_fence_always_allows_and_never_expires() {
    let fence = Fence::open();
    advance(Duration::from_secs(3600)).await;
    assert_eq!(fence.check(), Ok(()));
    assert_eq!(fence.deadline(), None);
    assert!(fence.expired().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_leased_fence_refuses_until_the_first_renewal() {
    let fence = Fence::leased(VALIDITY);
    assert_eq!(fence.check(), Err(Fenced::NeverAcquired));
    assert_eq!(fence.deadline(), None);
    fence.renewed(Instant::now());
    assert_eq!(fence.check(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn writes_stop_validity_after_the_renewal_was_sent() {
    let fence = Fence::leased(VALIDITY);
    let sent = Instant::now();
    // The answer came back a second later: the deadline still counts from
    // the send.
    advance(Duration::from_secs(1)).await;
    fence.renewed(sent);
    assert_eq!(fence.deadline(), Some(sent + VALIDITY));
    advance(VALIDITY - Duration::from_secs(1) - MS).await;
    assert_eq!(fence.check(), Ok(()));
    advance(MS).await;
    assert_eq!(
        fence.check(),
        Err(Fenced::Expired {
            since: VALIDITY,
            validity: VALIDITY
        })
    );
    let refused = fence.check().unwrap_err().to_string();
    assert!(refused.starts_with("not the leader any more"), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn a_renewal_extends_and_an_older_one_never_shortens() {
    let fence = Fence::leased(VALIDITY);
    let first = Instant::now();
    fence.renewed(first);
    advance(Duration::from_secs(3)).await;
    let second = Instant::now();
    fence.renewed(second);
    // A slow answer to an earlier renewal arrives late.
    fence.renewed(first);
    assert_eq!(fence.deadline(), Some(second + VALIDITY));
    advance(Duration::from_secs(3)).await;
    assert_eq!(fence.check(), Ok(()), "6 s after the first renewal");
}

#[tokio::test(start_paused = true)]
async fn a_revoked_fence_refuses_for_good() {
    let fence = Fence::leased(VALIDITY);
    fence.renewed(Instant::now());
    fence.revoke();
    assert_eq!(fence.check(), Err(Fenced::Revoked));
    fence.renewed(Instant::now() + MS);
    assert_eq!(fence.check(), Err(Fenced::Revoked));
}

#[tokio::test(start_paused = true)]
async fn expired_resolves_at_the_deadline_and_follows_renewals() {
    let fence = Fence::leased(VALIDITY);
    let mut expired = Box::pin(fence.expired());
    // Never acquired is not expired: nothing was allowed to stop.
    advance(VALIDITY * 2).await;
    assert!((&mut expired).now_or_never().is_none());
    let start = Instant::now();
    fence.renewed(start);
    advance(Duration::from_secs(3)).await;
    assert!((&mut expired).now_or_never().is_none());
    fence.renewed(Instant::now());
    expired.await;
    assert_eq!(Instant::now(), start + Duration::from_secs(3) + VALIDITY);
    assert!(matches!(fence.check(), Err(Fenced::Expired { .. })));
}

#[tokio::test(start_paused = true)]
async fn expired_resolves_at_once_on_revocation() {
    let fence = Fence::leased(VALIDITY);
    fence.renewed(Instant::now());
    let waiter = tokio::spawn({
        let fence = fence.clone();
        async move { fence.expired().await }
    });
    tokio::task::yield_now().await;
    let revoked_at = Instant::now();
    fence.revoke();
    waiter.await.unwrap();
    assert_eq!(Instant::now(), revoked_at, "no wait for the deadline");
}
