//! The operator against the emulator's strict profile (every [unverified]
//! behaviour at its hardest: status not editable, 409 on a stale ETag,
//! If-Match required, no ETag headers, `$batch` stopping at its first
//! failure, tokens echoed in errors), with conflicts injected and batching
//! on: each order ends in its own named condition, with no write it should
//! not make and no retry storm.

use std::time::Duration;

use crate::support::{self, Env};
use d365_emulator::{Emulator, Faults, Profile, WriteRecord, WriteSource};
use kube::api::Api;
use sales_order_operator::api::{
    BatchSpec, ConditionType, D365Connection, SalesOrderStatus, SalesStatus,
};
use sales_order_operator::fixtures::Placed;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);
/// An order of a company the app user may read but not write.
const FOREIGN: &str = "SO-2025-0901";

/// Every PATCH of `number` the emulator evaluated, accepted or refused.
fn attempts(emu: &Emulator, number: &str) -> Vec<WriteRecord> {
    emu.history()
        .into_iter()
        .filter(|w| w.source == WriteSource::Client && w.sales_order_number == number)
        .collect()
}

async fn strict_env() -> Env {
    let faults = Profile::Strict.apply(Faults {
        conflict_rate: 0.3,
        read_only_companies: vec!["demf".into()],
        ..Faults::default()
    });
    let emu = support::emulator(4, faults).await;
    // Order 4 already holds what its object will ask for; FOREIGN is in
    // the read-only company.
    emu.put_order(
        json!({"dataAreaId": "usmf", "SalesOrderNumber": "SO-2025-0004",
        "SalesOrderStatus": "Backorder", "ConfirmedReceiptDate": "2025-02-08T12:00:00Z"}),
    );
    emu.put_order(json!({"dataAreaId": "demf", "SalesOrderNumber": FOREIGN,
        "SalesOrderStatus": "Backorder"}));
    let cp = testkit::control_plane().await;
    cp.apply_crds(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let client = cp.client();
    let ns = cp.namespace("strict").await;
    support::put_secret(&client, &ns).await;
    let mut connection = D365Connection::test(&emu.url());
    connection.spec.batch = Some(BatchSpec {
        max_operations: 10,
        window_milliseconds: 100,
    });
    support::create_connection(&client, &ns, connection).await;
    Env {
        cp,
        client,
        ns,
        emu,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_ends_in_its_named_condition_against_the_strict_profile() {
    let env = strict_env().await;
    let backorder = |n| SalesOrderStatus::test(n).wanting(SalesStatus::Backorder);
    let orders = [
        backorder(1),              // date only: written
        backorder(2),              // date only: written
        SalesOrderStatus::test(3), // needs the status: not editable
        backorder(4),              // already so
        backorder(9).for_order("DEMF", FOREIGN).named("foreign"),
    ];
    support::create_orders(&env.client, &env.ns, orders).await;
    // A short resync, so "left alone" below is measured over rounds in
    // which every other order was read again.
    let op = env.operator(&["--resync-interval", "1s"]);
    let expected = [
        ("so-2025-0001", "Updated"),
        ("so-2025-0002", "Updated"),
        ("so-2025-0003", "FieldNotEditable"),
        ("so-2025-0004", "InSync"),
        ("foreign", "Forbidden"),
    ];
    for (name, reason) in expected {
        support::wait_reason_in(&env.orders(), name, reason, WAIT).await;
    }

    let api: Api<SalesOrderStatus> = env.orders();
    let not_editable = api.get("so-2025-0003").await.unwrap();
    let stalled = not_editable
        .condition(ConditionType::Stalled)
        .expect("Stalled condition");
    assert_eq!(stalled.status, "True", "{stalled:?}");
    assert!(stalled.message.contains("SalesOrderStatus"), "{stalled:?}");

    // No write it should not make: none for the order needing a read-only
    // field, none for the one in sync; one accepted write each for the
    // two that changed; every accepted write carried an ETag.
    assert!(attempts(&env.emu, "SO-2025-0003").is_empty());
    assert!(attempts(&env.emu, "SO-2025-0004").is_empty());
    for number in ["SO-2025-0001", "SO-2025-0002"] {
        let tries = attempts(&env.emu, number);
        let accepted: Vec<_> = tries.iter().filter(|w| w.accepted).collect();
        assert_eq!(accepted.len(), 1, "{number}: {tries:?}");
        // 30 % injected conflicts: a few tries, not a storm.
        assert!(tries.len() <= 8, "{number}: {} tries", tries.len());
    }
    // Forbidden is Stalled: tried, then left alone while the in-sync order
    // is read again in three more resync rounds.
    let before = env.requests_for("SO-2025-0004");
    testkit::wait_for(WAIT, || async {
        (env.requests_for("SO-2025-0004") >= before + 3).then_some(())
    })
    .await
    .expect("three resync rounds of the in-sync order");
    let foreign = attempts(&env.emu, FOREIGN);
    assert!(
        (1..=2).contains(&foreign.len()),
        "foreign order tried {} times",
        foreign.len()
    );
    // Strict errors quote the bearer token: none reaches a status.
    let statuses = serde_json::to_string(&api.list(&Default::default()).await.unwrap()).unwrap();
    for token in env.emu.issued_tokens() {
        assert!(!statuses.contains(&token), "a token in a status");
    }
    assert!(!op.logs().is_empty());
}
