//! The status after an update and the one after the resync that follows
//! are equal, whatever way D365 answers the PATCH (204 with or without an
//! ETag, 200 with the entity, inside a `$batch` or not): the resync writes
//! nothing to Kubernetes. The e2e `steady` tests show the same on a real
//! apiserver for the default answer.

use std::sync::Arc;
use std::time::Duration;

use d365_emulator::Faults;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sales_order_operator::api::{SalesOrderStatusSpec, SalesStatus};
use sales_order_operator::controller::sync::{Attempt, OrderRules, sync_order};
use sales_order_operator::d365::{BatchSettings, D365Client, NoopObserver};
use sales_order_operator::reconcile::{Outcome, next_status};

use crate::common::{emulator_with, settings};

fn rules() -> OrderRules {
    OrderRules {
        status_field: "SalesOrderStatus".into(),
        date_field: "ConfirmedReceiptDate".into(),
        final_statuses: vec![SalesStatus::Invoiced, SalesStatus::Canceled],
        capabilities: Default::default(),
    }
}

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

#[tokio::test]
async fn the_resync_after_an_update_keeps_the_status_in_every_answer_mode() {
    let modes = [
        ("204", false, false, false),
        ("204 + ETag", false, true, false),
        ("200 entity", true, false, false),
        ("200 entity + ETag", true, true, false),
        ("204 in $batch", false, false, true),
        ("200 entity in $batch", true, false, true),
    ];
    for (name, entity, etag_header, batch) in modes {
        let faults = Faults {
            patch_returns_entity: entity,
            patch_etag_header: etag_header,
            ..Faults::default()
        };
        let emu = emulator_with(1, faults).await;
        let mut s = settings(&emu);
        s.batch = batch.then_some(BatchSettings {
            max_operations: 10,
            window: Duration::from_millis(5),
        });
        let client = D365Client::new(s, Arc::new(NoopObserver)).unwrap();
        let spec = SalesOrderStatusSpec::test("SO-2025-0001", SalesStatus::Delivered);

        let first = sync_order(&client, &rules(), &spec, Attempt::of(1, Some(1), None)).await;
        let Outcome::Updated { observed, .. } = &first.outcome else {
            panic!("{name}: {:?}", first.outcome);
        };
        let updated = next_status(None, Some(1), &first.outcome, at(100));

        let attempt = Attempt::of(1, Some(1), Some(&updated));
        let second = sync_order(&client, &rules(), &spec, attempt).await;
        let Outcome::InSync { observed: seen } = &second.outcome else {
            panic!("{name}: {:?}", second.outcome);
        };
        assert_eq!(
            seen, observed,
            "{name}: the resync reads what the update recorded"
        );
        let resynced = next_status(Some(&updated), Some(1), &second.outcome, at(700));
        assert_eq!(resynced, updated, "{name}: the resync would write status");
    }
}
