//! End to end, issue 11 item 4: a `$batch` answered as ASP.NET OData
//! does by default — processing stops at the first failed changeset, the
//! later operations get no answer (the emulator ignores
//! `Prefer: odata.continue-on-error` here). Every unanswered order is
//! "not sent": never Updated before it is really written, retried, and
//! converged; none lost, none written twice.

use std::time::Duration;

use crate::support::{Env, create_orders, env, ready_reasons};
use d365_emulator::Faults;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::{Placed, order_number};
use serde_json::json;

/// Orders after the failing one, SO-2025-0002..=0008.
const LATER: usize = 7;
const BAD: &str = "SO-BAD";
const WAIT: Duration = Duration::from_secs(90);

/// Waits until the emulator has answered a request for `number`.
async fn seen(env: &Env, number: &str) {
    testkit::wait_for(WAIT, || async {
        (env.requests_for(number) > 0).then_some(())
    })
    .await
    .unwrap_or_else(|_| panic!("no request for {number}"));
}

/// How many objects say Updated or InSync; each Updated one is checked
/// against the emulator: it has an accepted write.
fn converged(env: &Env, reasons: &[(String, Option<String>, Option<String>)]) -> usize {
    let writes = env.client_writes();
    let mut n = 0;
    for (name, _, reason) in reasons {
        match reason.as_deref() {
            Some("Updated") => {
                let number = name.to_uppercase();
                let written = writes.iter().any(|w| w.sales_order_number == number);
                assert!(written, "{name} is Updated before its write reached D365");
            }
            Some("InSync") => {}
            _ => continue,
        }
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stopped_at_its_second_changeset_retries_the_later_orders() {
    let faults = Faults {
        honour_continue_on_error: false,
        ..Faults::default()
    };
    let env = env("batch-stop", 1 + LATER, faults).await;
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"spec": {
        "batch": {"maxOperations": 50, "windowMilliseconds": 3000},
        "finalStatuses": []
    }});
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("batching on, no final statuses of our own");
    // D365's own validation refuses SO-BAD (leaving Invoiced).
    env.emu.put_order(json!({
        "dataAreaId": "usmf", "SalesOrderNumber": BAD, "SalesOrderStatus": "Invoiced"
    }));
    let operator = env.operator(&["--stalled-recheck", "1h"]);

    // In the batch: order 1's changeset, then SO-BAD's, then the later ones.
    create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    seen(&env, &order_number(1)).await;
    let bad = SalesOrderStatus::test(1)
        .named("so-bad")
        .for_order("USMF", BAD);
    create_orders(&env.client, &env.ns, [bad]).await;
    seen(&env, BAD).await;
    create_orders(
        &env.client,
        &env.ns,
        (2..=1 + LATER).map(SalesOrderStatus::test),
    )
    .await;

    let converged = testkit::wait_for(WAIT, || async {
        let reasons = ready_reasons(&env.client, &env.ns).await;
        let updated = converged(&env, &reasons);
        let bad_done = reasons
            .iter()
            .any(|(n, _, r)| n == "so-bad" && r.as_deref() == Some("Rejected"));
        (updated == 1 + LATER && bad_done).then_some(())
    })
    .await;
    let reasons = ready_reasons(&env.client, &env.ns).await;
    assert!(converged.is_ok(), "not converged: {reasons:?}");

    let writes = env.client_writes();
    for n in 1..=1 + LATER {
        let number = order_number(n);
        let mine: Vec<_> = writes
            .iter()
            .filter(|w| w.sales_order_number == number)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{number}: exactly one write, none lost: {mine:?}"
        );
        assert!(mine[0].via_batch, "{number}");
        assert_eq!(
            env.emu.order("usmf", &number).unwrap()["SalesOrderStatus"],
            "Delivered"
        );
    }
    assert!(writes.iter().all(|w| w.sales_order_number != BAD));
    let logs = operator.logs();
    assert!(
        logs.contains("not sent: the $batch answer has no part for it"),
        "the first batch stopped at SO-BAD and left later orders unanswered"
    );
    let batches = env
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("$batch"))
        .count();
    assert!(
        batches >= 2,
        "the unanswered orders went out again: {batches}"
    );
}
