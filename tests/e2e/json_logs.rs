//! The operator's JSON log of a run with updates, a throttle, conflicts, a
//! `$batch` connection and an order D365 does not have: every line parses
//! with a parser that refuses repeated keys, and every D365 request line
//! carries the fields docs/operations.md ("Logs") documents.

use std::time::Duration;

use d365_emulator::Faults;
use sales_order_operator::api::{BatchSpec, D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::Placed;
use serde_json::Value;

use crate::json_lines::parse_strict;
use crate::support::{create_connection, create_orders, env, ready_reasons, wait_all};

const ORDERS: usize = 16;

/// Fields of every D365 request line that got an answer, as documented.
const REQUEST_FIELDS: [&str; 7] = [
    "method",
    "key",
    "status",
    "etag_sent",
    "etag_received",
    "attempt",
    "duration_ms",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_log_line_has_unique_keys_and_request_lines_the_documented_fields() {
    let throttled = Faults {
        throttle_retry_after: Some(1),
        ..Faults::default()
    };
    let env = env("jsonlogs", ORDERS, throttled).await;
    let mut batched = D365Connection::test(&env.emu.url()).named("batched");
    batched.spec.batch = Some(BatchSpec::default());
    create_connection(&env.client, &env.ns, batched).await;
    let orders = (1..=ORDERS).map(|n| match n % 2 {
        0 => SalesOrderStatus::test(n).via("batched"),
        _ => SalesOrderStatus::test(n),
    });
    let missing = SalesOrderStatus::test(1)
        .named("missing")
        .for_order("USMF", "SO-9999-9999");
    create_orders(&env.client, &env.ns, orders.chain([missing])).await;
    let mut operator = env.operator(&[]);

    // Throttled first, then conflicts on ~40% of the writes.
    testkit::wait_for(Duration::from_secs(60), || async {
        let reasons = ready_reasons(&env.client, &env.ns).await;
        reasons
            .iter()
            .any(|(_, _, r)| r.as_deref() == Some("Throttled"))
            .then_some(())
    })
    .await
    .expect("an order is Throttled");
    env.emu.set_faults(Faults {
        conflict_rate: 0.4,
        ..Faults::default()
    });
    wait_all(
        &env.client,
        &env.ns,
        ORDERS + 1,
        &["Updated", "InSync", "NotFound"],
        Duration::from_secs(120),
    )
    .await;
    assert!(operator.terminate(), "the operator stops cleanly");

    let log = operator.logs();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_strict(l).unwrap_or_else(|e| panic!("{e} in log line {l}")))
        .collect();
    assert!(lines.len() > 50, "only {} log lines", lines.len());
    check_request_lines(&lines);
    let not_in_sync = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "order not in sync")
        .collect::<Vec<_>>();
    assert!(
        not_in_sync
            .iter()
            .any(|l| l["fields"]["reason"] == "NotFound" && l["fields"]["detail"].is_string()),
        "no NotFound line with its detail: {not_in_sync:?}"
    );
}

/// Every D365 request line has the documented fields; the run had PATCHes
/// with their If-Match, conflicts, `$batch` calls and 429s.
fn check_request_lines(lines: &[Value]) {
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            let message = l["fields"]["message"].as_str().unwrap_or_default();
            message == "D365 request" || message == "D365 request refused"
        })
        .map(|line| {
            check_request_line(line);
            &line["fields"]
        })
        .collect();
    let count = |keep: &dyn Fn(&Value) -> bool| requests.iter().filter(|f| keep(f)).count();
    let status = |f: &Value, s: u64| f["status"].as_u64() == Some(s);
    // 200: a PATCH asks for the entity back (`Prefer: return=representation`).
    let patches = count(&|f| f["method"] == "PATCH" && status(f, 200));
    let conflicts = count(&|f| f["method"] == "PATCH" && (status(f, 412) || status(f, 409)));
    let batches = count(&|f| f["method"] == "POST" && f["key"] == "$batch");
    let throttles = count(&|f| status(f, 429));
    let reads_with_etag = count(&|f| {
        let etag = f["etag_received"].as_str().unwrap_or_default();
        f["method"] == "GET" && status(f, 200) && etag.starts_with("W/\"")
    });
    eprintln!(
        "json_logs: {} request lines: {patches} PATCH 200, {conflicts} conflicts, \
         {batches} $batch, {throttles} 429, {reads_with_etag} GET 200 with an ETag",
        requests.len()
    );
    assert!(patches > 0 && conflicts > 0 && batches > 0 && throttles > 0 && reads_with_etag > 0);
}

/// One request line: the documented fields, the If-Match of a PATCH, and
/// the object of a request for one order (named by its reconcile span).
fn check_request_line(line: &Value) {
    let fields = &line["fields"];
    // An operation inside a `$batch` has the call's attempt and duration
    // on the `$batch` line.
    let in_batch = fields["batch"] == true;
    for name in REQUEST_FIELDS {
        let the_calls = matches!(name, "attempt" | "duration_ms");
        if !(in_batch && the_calls) {
            assert!(!fields[name].is_null(), "{name} missing in {line}");
        }
    }
    let key = fields["key"].as_str().unwrap_or_default();
    assert!(!key.is_empty(), "{line}");
    if !in_batch {
        assert!(matches!(fields["attempt"].as_u64(), Some(1 | 2)), "{line}");
    }
    if fields["method"] == "PATCH" {
        let sent = fields["etag_sent"].as_str().unwrap_or_default();
        assert!(
            sent.starts_with("W/\""),
            "PATCH without its If-Match: {line}"
        );
    }
    let one_order = key.starts_with("USMF/") && !in_batch;
    let object = line["span"]["object.ref"].as_str().unwrap_or_default();
    assert!(
        !one_order || object.starts_with("SalesOrderStatus."),
        "an order's request without its object: {line}"
    );
}
