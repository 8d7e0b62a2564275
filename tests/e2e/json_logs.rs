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
/// with their If-Match, `$batch` calls, 429s and conflicts.
fn check_request_lines(lines: &[Value]) {
    let request_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            let message = l["fields"]["message"].as_str().unwrap_or_default();
            message == "D365 request" || message == "D365 request refused"
        })
        .collect();
    for line in &request_lines {
        // A request for one order, sent by its reconcile, names the object
        // through the reconcile span.
        let key = line["fields"]["key"].as_str().unwrap_or_default();
        let one_order = key.starts_with("USMF/") && line["fields"]["batch"] != true;
        let object = line["span"]["object.ref"].as_str().unwrap_or_default();
        assert!(
            !one_order || object.starts_with("SalesOrderStatus."),
            "an order's request without its object: {line}"
        );
    }
    let requests: Vec<&Value> = request_lines.iter().map(|l| &l["fields"]).collect();
    for fields in &requests {
        // An operation inside a `$batch` has the call's attempt and
        // duration on the `$batch` line.
        let in_batch = fields["batch"] == true;
        for name in REQUEST_FIELDS {
            let the_calls = matches!(name, "attempt" | "duration_ms");
            if !(in_batch && the_calls) {
                assert!(!fields[name].is_null(), "{name} missing in {fields}");
            }
        }
        assert!(
            fields["key"].as_str().is_some_and(|k| !k.is_empty()),
            "{fields}"
        );
        if !in_batch {
            assert!(
                matches!(fields["attempt"].as_u64(), Some(1 | 2)),
                "{fields}"
            );
        }
        if fields["method"] == "PATCH" {
            let sent = fields["etag_sent"].as_str().unwrap_or_default();
            assert!(
                sent.starts_with("W/\""),
                "PATCH without its If-Match: {fields}"
            );
        }
    }
    let with = |method: &str, status: u64| {
        requests
            .iter()
            .filter(|f| f["method"] == method && f["status"].as_u64() == Some(status))
            .count()
    };
    let batches = requests
        .iter()
        .filter(|f| f["method"] == "POST" && f["key"] == "$batch")
        .count();
    let conflicts = with("PATCH", 412) + with("PATCH", 409);
    let throttles = requests
        .iter()
        .filter(|f| f["status"].as_u64() == Some(429))
        .count();
    let reads_with_etag = requests
        .iter()
        .filter(|f| f["method"] == "GET" && f["status"].as_u64() == Some(200))
        .filter(|f| {
            f["etag_received"]
                .as_str()
                .is_some_and(|e| e.starts_with("W/\""))
        })
        .count();
    assert!(
        with("PATCH", 204) > 0 && batches > 0 && throttles > 0 && reads_with_etag > 0,
        "PATCH 204: {}, $batch: {batches}, 429: {throttles}, GET with ETag: {reads_with_etag}",
        with("PATCH", 204)
    );
    eprintln!(
        "json_logs: {} request lines, {conflicts} single-PATCH conflicts, {batches} batches, {throttles} throttles",
        requests.len()
    );
}
