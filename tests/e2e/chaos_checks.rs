//! The chaos invariants catch what they claim to: each check run on a
//! hand-made journal that breaks it (and on one that does not), so a
//! PASS in the chaos table means something.

use std::collections::BTreeMap;

use d365_emulator::{WriteRecord, WriteSource};
use serde_json::{Value, json};

use crate::chaos_invariants::{
    Verdict, fence_row, lost_edits_row, requests_row, stale_etag_row, writer_identity,
    writes_per_desired_row,
};
use crate::chaos_timeline::{End, Incarnation, Outage, Timeline};

const AGENT_A: &str = "sales-order-operator/0.1.0 (chaos-a-1)";

fn write(seq: u64, source: WriteSource, fields: Value) -> WriteRecord {
    let Value::Object(fields) = fields else {
        panic!("fields are an object")
    };
    WriteRecord {
        seq,
        data_area_id: "usmf".into(),
        sales_order_number: "SO-2025-0001".into(),
        source,
        if_match: Some(format!("W/\"{seq}\"")),
        etag_before: format!("W/\"{seq}\""),
        etag_after: Some(format!("W/\"{}\"", seq + 1)),
        accepted: true,
        status: 204,
        fields,
        ignored: Vec::new(),
        via_batch: false,
        at_ms: 10_000 + seq * 1_000,
        agent: Some(AGENT_A.into()),
    }
}

fn client(seq: u64) -> WriteRecord {
    write(
        seq,
        WriteSource::Client,
        json!({"SalesOrderStatus": "Delivered"}),
    )
}

#[test]
fn a_write_on_an_old_or_missing_etag_is_stale() {
    let good = client(1);
    assert_eq!(
        stale_etag_row(std::slice::from_ref(&good)).verdict,
        Verdict::Pass
    );
    let mut old = client(2);
    old.if_match = Some("W/\"1\"".into());
    let mut blind = client(3);
    blind.if_match = None;
    let mut star = client(4);
    star.if_match = Some("*".into());
    let mut refused = old.clone();
    refused.accepted = false;
    assert_eq!(
        stale_etag_row(&[good.clone(), refused]).verdict,
        Verdict::Pass
    );
    for bad in [old, blind, star] {
        let row = stale_etag_row(&[good.clone(), bad]);
        assert_eq!(row.verdict, Verdict::Fail);
        assert!(row.value.starts_with("1 of 2"), "{}", row.value);
    }
}

#[test]
fn a_desired_state_written_twice_is_a_second_writer() {
    let writes = [client(1), client(2), client(3)];
    assert_eq!(writes_per_desired_row(&writes, 3).verdict, Verdict::Pass);
    assert_eq!(writes_per_desired_row(&writes, 4).verdict, Verdict::Pass);
    let row = writes_per_desired_row(&writes, 2);
    assert_eq!(row.verdict, Verdict::Fail);
    assert!(row.value.starts_with("3 for 2"), "{}", row.value);
    let mut refused = client(4);
    refused.accepted = false;
    let with_refused = [client(1), client(2), refused];
    assert_eq!(
        writes_per_desired_row(&with_refused, 2).verdict,
        Verdict::Pass
    );
}

#[test]
fn an_edit_is_lost_when_a_client_write_carries_its_field_or_the_end_differs() {
    let edit = write(
        1,
        WriteSource::External,
        json!({"CustomersOrderReference": "EXT-1"}),
    );
    let ours = client(2);
    let kept = |_: &str, _: &str, _: &str| json!("EXT-1");
    let row = lost_edits_row(&[edit.clone(), ours.clone()], kept);
    assert_eq!(row.verdict, Verdict::Pass, "{}", row.value);

    let clobber = write(
        3,
        WriteSource::Client,
        json!({"CustomersOrderReference": ""}),
    );
    let row = lost_edits_row(&[edit.clone(), clobber], |_: &str, _: &str, _: &str| {
        json!("")
    });
    assert_eq!(row.verdict, Verdict::Fail);
    assert!(row.value.starts_with("1 of 1"), "{}", row.value);

    let silently_reverted = |_: &str, _: &str, _: &str| json!("PO-1");
    assert_eq!(
        lost_edits_row(&[edit.clone(), ours], silently_reverted).verdict,
        Verdict::Fail
    );

    // A later edit by someone else replaces the first: nothing lost.
    let later = write(
        4,
        WriteSource::ConcurrentWriter,
        json!({"CustomersOrderReference": "CW-2"}),
    );
    let row = lost_edits_row(&[edit, later], |_: &str, _: &str, _: &str| json!("CW-2"));
    assert_eq!(row.verdict, Verdict::Pass, "{}", row.value);
}

fn timeline() -> Timeline {
    let inc = |identity: &str, slot: &str, started_ms, ended_ms, end| Incarnation {
        identity: identity.into(),
        slot: slot.into(),
        started_ms,
        ended_ms,
        end,
    };
    Timeline {
        lease_ms: 4_000,
        incarnations: vec![
            inc("chaos-a-1", "a", 0, Some(40_000), End::Killed),
            // Exited, and restarted in its pod under the same name.
            inc("chaos-b-1", "b", 0, Some(22_000), End::Exited),
            inc("chaos-b-1", "b", 25_000, None, End::Running),
        ],
        outages: vec![Outage {
            slot: Some("a".into()),
            what: "cut".into(),
            from_ms: 12_000,
            to_ms: 30_000,
        }],
    }
}

fn at(seq: u64, at_ms: u64, agent: &str) -> WriteRecord {
    let mut w = client(seq);
    w.at_ms = at_ms;
    w.agent = Some(agent.into());
    w
}

#[test]
fn a_write_past_the_deadline_or_after_death_breaks_the_fence() {
    let t = timeline();
    let b = "sales-order-operator/0.1.0 (chaos-b-1)";
    let fine = [
        at(1, 13_000, AGENT_A),       // cut, but within the lease
        at(2, 31_000, AGENT_A),       // after the restore
        at(3, 20_000, b),             // the other slot was not cut
        at(8, 26_000, b),             // b's restarted container
        at(4, 40_000 + 900, AGENT_A), // in flight at the kill
    ];
    let row = fence_row(&fine, &t);
    assert_eq!(row.verdict, Verdict::Pass, "{}", row.value);
    for (bad, kind) in [
        (at(5, 16_500, AGENT_A), "1 in cut"),
        (at(6, 42_000, AGENT_A), "1 after the process was SIGKILLed"),
        (at(9, 23_500, b), "1 after the process exited"),
        (
            at(7, 20_000, "sales-order-operator/0.1.0 (someone-else)"),
            "1 by an unknown replica",
        ),
    ] {
        let row = fence_row(&[fine[0].clone(), bad], &t);
        assert_eq!(row.verdict, Verdict::Fail, "{}", row.value);
        assert!(row.value.contains(kind), "{}", row.value);
    }
}

#[test]
fn unnamed_writers_are_not_a_pass() {
    let t = timeline();
    let anonymous = |seq| at(seq, 20_000, "sales-order-operator/0.1.0");
    let row = fence_row(&[anonymous(1), anonymous(2)], &t);
    assert_eq!(row.verdict, Verdict::NotApplicable);
    assert!(row.value.contains("writer not identified"), "{}", row.value);
    let row = fence_row(&[at(1, 13_000, AGENT_A), anonymous(2)], &t);
    assert_eq!(row.verdict, Verdict::Fail, "{}", row.value);
    assert_eq!(writer_identity(Some(AGENT_A)), Some("chaos-a-1"));
    assert_eq!(writer_identity(Some("reqwest/0.12")), None);
    assert_eq!(writer_identity(None), None);
}

#[test]
fn requests_per_order_has_a_bound() {
    let counters = BTreeMap::from([("GET 200".into(), 300), ("PATCH 204".into(), 120)]);
    assert_eq!(requests_row(&counters, 30, 14.0).verdict, Verdict::Pass);
    assert_eq!(requests_row(&counters, 30, 13.9).verdict, Verdict::Fail);
}
