//! Metrics of PATCHes coalesced into `$batch`, against the emulator with
//! conflicts injected: the `$batch` call is `kind="batch"`, and each
//! operation refused inside a 200 answer counts as a conflict, as a single
//! PATCH refused with 409/412 does.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use d365_emulator::Faults;
use futures::future::join_all;
use sales_order_operator::d365::{BatchSettings, D365Client, D365Error, ETag};
use sales_order_operator::metrics::Metrics;

const ORDERS: u32 = 30;

/// The value of the sample line starting with `prefix` (0 when absent).
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn conflicts_inside_a_batch_are_counted_per_operation() {
    let emu = emulator_with(
        ORDERS as usize,
        Faults {
            conflict_rate: 0.5,
            ..Faults::default()
        },
    )
    .await;
    let mut s = settings(&emu);
    s.batch = Some(BatchSettings {
        max_operations: 10,
        window: Duration::from_millis(30),
    });
    let metrics = Arc::new(Metrics::default());
    let client = D365Client::new(s, metrics.clone()).unwrap();
    let calls = (1..=ORDERS).map(|n| {
        let (k, client) = (key(n), &client);
        let etag = ETag::parse(&emu_etag(&emu, &k)).unwrap();
        async move {
            client
                .patch_order(&k, &etag, &changes(&[(REQUISITION, "metrics")]))
                .await
        }
    });
    let results = join_all(calls).await;
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(D365Error::Conflict { .. })))
        .count();
    let written = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(refused + written, ORDERS as usize, "{results:?}");
    assert!(
        refused > 0 && written > 0,
        "{refused} refused, {written} written"
    );

    let text = metrics.render();
    let posts = data_requests(&emu)
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("$batch"))
        .count();
    assert!(posts >= 3, "{posts} $batch calls");
    assert_eq!(
        sample(&text, "sales_order_operator_d365_conflicts_total "),
        refused as f64,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"sales_order_operator_d365_requests_total{method="POST",kind="batch",code="200"}"#
        ),
        posts as f64,
        "{text}"
    );
    assert!(!text.contains(r#"method="POST",kind="entity""#), "{text}");
    assert!(
        !text.contains(r#"method="PATCH",kind="#),
        "no PATCH call of its own: {text}"
    );
    let conflict_parts = sample(
        &text,
        r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="409"}"#,
    ) + sample(
        &text,
        r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="412"}"#,
    );
    assert_eq!(conflict_parts, refused as f64, "{text}");
    assert_eq!(
        sample(
            &text,
            // 200: each PATCH asks for the entity back and the emulator honours it.
            r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="200"}"#
        ),
        written as f64,
        "{text}"
    );
}
