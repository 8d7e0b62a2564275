//! Only proven writes count, end to end on a real kube-apiserver: a D365
//! that redirects, or that accepts writes without applying them, never
//! leaves an order Ready, and the operator stops writing instead of
//! PATCHing on every resync.

use std::time::Duration;

use crate::support::{Env, env, wait_reason};
use d365_emulator::Faults;
use sales_order_operator::api::{ConditionType, SalesOrderStatus};
use sales_order_operator::fixtures::order_number;

/// Short enough that "a few resyncs" pass in seconds.
const QUICK: [&str; 4] = ["--resync-interval", "1s", "--stalled-recheck", "1s"];

/// Requests of `method` the emulator saw for order `n`.
fn requests(env: &Env, n: usize, method: &str) -> usize {
    let number = order_number(n);
    env.emu
        .requests()
        .iter()
        .filter(|r| r.method == method && r.sales_order_number.as_deref() == Some(&number))
        .count()
}

/// Waits until the emulator has seen `more` GETs of order `n` beyond
/// `after`: that many further reconciles happened.
async fn reconciles(env: &Env, n: usize, after: usize, more: usize) {
    testkit::wait_for(Duration::from_secs(60), || async {
        (requests(env, n, "GET") >= after + more).then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("order {n}: {more} more reconciles never came"));
}

/// (Ready, Reconciling, Stalled) statuses and the shared reason.
fn conditions(order: &SalesOrderStatus) -> (Vec<String>, String) {
    let kinds = [
        ConditionType::Ready,
        ConditionType::Reconciling,
        ConditionType::Stalled,
    ];
    let statuses = kinds
        .iter()
        .map(|k| order.condition(*k).map_or("-".into(), |c| c.status.clone()))
        .collect();
    let reason = order
        .ready_condition()
        .map_or("-".into(), |c| c.reason.clone());
    (statuses, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_d365_never_yields_ready_and_is_never_written() {
    // Where a followed redirect would land: a D365 that would take the write.
    let elsewhere = crate::support::emulator(1, Faults::default()).await;
    let faults = Faults {
        redirect_status: Some(301),
        redirect_to: elsewhere.url(),
        ..Faults::default()
    };
    let env = env("redirect", 1, faults).await;
    let _op = env.operator(&QUICK);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "ConnectionNotReady").await;
    let message = &order.ready_condition().unwrap().message;
    for needle in [
        "D365 answered 301 redirecting to",
        elsewhere.url().as_str(),
        "redirects are not followed: check the connection's url",
    ] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    // A few rechecks later: still refused, still nothing written anywhere.
    let gets = requests(&env, 1, "GET");
    reconciles(&env, 1, gets, 3).await;
    let order = env.orders().get("so-2025-0001").await.unwrap();
    assert_eq!(
        conditions(&order),
        (
            vec!["False".into(), "-".into(), "True".into()],
            "ConnectionNotReady".into()
        )
    );
    assert!(
        order.status.unwrap().last_update.is_none(),
        "no write recorded"
    );
    assert_eq!(requests(&env, 1, "PATCH"), 0, "the GET is refused first");
    assert!(env.emu.history().is_empty(), "{:?}", env.emu.history());
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert!(elsewhere.history().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_d365_that_does_not_apply_writes_ends_not_applied_after_one_resend() {
    let faults = Faults {
        ignore_writes: vec!["SalesOrderStatus".into()],
        ..Faults::default()
    };
    let env = env("not-applied", 1, faults).await;
    let _op = env.operator(&QUICK);
    // The status alone differs: every PATCH is ignored whole, so the ETag
    // stays put and each read proves that no one else wrote.
    let order = SalesOrderStatus::test(1).delivering(None);
    crate::support::create_orders(&env.client, &env.ns, [order]).await;
    let order = wait_reason(&env, "so-2025-0001", "NotApplied").await;
    let order = match conditions(&order).0[2].as_str() {
        "True" => order,
        // Caught during the resend: wait for the verdict.
        _ => testkit::wait_for(Duration::from_secs(60), || async {
            let o = env.orders().get("so-2025-0001").await.ok()?;
            (o.condition(ConditionType::Stalled)?.status == "True").then_some(o)
        })
        .await
        .expect("Stalled/NotApplied after the resend"),
    };
    let stalled = order.condition(ConditionType::Stalled).unwrap();
    assert_eq!(stalled.reason, "NotApplied");
    let writes = env.client_writes();
    assert_eq!(
        writes.len(),
        2,
        "the first PATCH and one resend: {writes:?}"
    );
    let etag = &writes[0].etag_before;
    for w in &writes {
        assert_eq!(w.ignored, ["SalesOrderStatus"], "{w:?}");
        assert_eq!((&w.etag_before, w.etag_after.as_ref()), (etag, Some(etag)));
    }
    for needle in [
        "2 PATCHes of SalesOrderStatus",
        etag.as_str(),
        "no one else wrote",
    ] {
        assert!(
            stalled.message.contains(needle),
            "{needle:?} in {}",
            stalled.message
        );
    }
    let last = order.status.as_ref().unwrap().last_update.as_ref().unwrap();
    assert_eq!((last.resends, last.from_etag.as_str()), (1, etag.as_str()));

    // Several resyncs later: no further PATCH, still Stalled/NotApplied.
    let gets = requests(&env, 1, "GET");
    reconciles(&env, 1, gets, 3).await;
    assert_eq!(requests(&env, 1, "PATCH"), 2);
    let order = env.orders().get("so-2025-0001").await.unwrap();
    assert_eq!(
        conditions(&order),
        (
            vec!["False".into(), "-".into(), "True".into()],
            "NotApplied".into()
        )
    );
}
