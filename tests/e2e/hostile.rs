//! Answers meant to hurt the operator, from the emulator, against the
//! operator process (issue 10): a token quoted in D365's errors shows
//! nowhere a user or a log reader looks, and a 1 GiB answer is refused
//! without the memory to hold it.

use std::time::Duration;

use crate::support::{env, wait_reason};
use d365_emulator::Faults;
use sales_order_operator::api::SalesOrderStatus;

const MIB: u64 = 1 << 20;

/// The Forbidden error quotes the request's bearer token (as some gateways
/// do); the order's conditions, its Events, the connection and the
/// operator's log carry `[REDACTED]` instead, and no token the emulator
/// ever issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoed_token_shows_in_no_status_event_or_log() {
    let faults = Faults {
        read_only_companies: vec!["usmf".into()],
        echo_token_in_errors: true,
        ..Faults::default()
    };
    let env = env("token-echo", 1, faults).await;
    let mut op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "Forbidden").await;
    let message = &order.ready_condition().unwrap().message;
    assert!(message.contains("Bearer [REDACTED]"), "{message}");
    let events = testkit::wait_for(Duration::from_secs(30), || async {
        let out = env
            .cp
            .kubectl(&["get", "events", "-n", &env.ns, "-o", "yaml"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("Bearer [REDACTED]").then_some(text)
    })
    .await
    .expect("an Event repeats the redacted error");
    let objects = env
        .cp
        .kubectl(&["get", "sos,d365c", "-n", &env.ns, "-o", "yaml"]);
    let objects = String::from_utf8_lossy(&objects.stdout).into_owned();
    assert!(op.terminate(), "graceful exit on SIGTERM");
    let logs = op.logs();
    assert!(logs.contains("[REDACTED]"), "the error is logged, redacted");
    let tokens = env.emu.issued_tokens();
    assert!(!tokens.is_empty(), "the operator got a token");
    for (name, text) in [("events", &events), ("objects", &objects), ("log", &logs)] {
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "a token leaked into the {name}"
            );
        }
    }
}

/// Every GET answer is 1 GiB (streamed by the emulator for free): the
/// order waits as Unavailable with "answer too large", and the operator
/// never holds more than its answer limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_answer_is_refused_with_bounded_operator_memory() {
    let faults = Faults {
        answer_padding_bytes: Some(1 << 30),
        ..Faults::default()
    };
    let env = env("padded", 1, faults).await;
    let op = env.operator(&[]);
    crate::support::create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "Unavailable").await;
    let message = &order.ready_condition().unwrap().message;
    assert!(message.contains("answer too large"), "{message}");
    let peak = op.peak_rss().expect("the operator runs");
    println!("operator peak RSS after a 1 GiB answer: {} MiB", peak / MIB);
    assert!(peak < 256 * MIB, "operator peak RSS {} MiB", peak / MIB);
    assert!(
        env.client_writes().is_empty(),
        "nothing written on an unread answer"
    );
}
