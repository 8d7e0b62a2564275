use serde_json::json;

use super::*;

const STATUS: &str = "SalesOrderStatus";
const DATE: &str = "ConfirmedReceiptDate";

/// The last write: status and date sent with If-Match "e0" at generation
/// 2, which produced "e1", after `resends` resends.
fn last(resends: u32) -> LastUpdate {
    LastUpdate {
        from_etag: "e0".into(),
        to_etag: Some("e1".into()),
        fields: vec![DATE.into(), STATUS.into()],
        generation: Some(2),
        resends,
        ..LastUpdate::default()
    }
}

fn fields(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_read_after_a_write_tells_whether_it_was_applied() {
    let no_generation = LastUpdate {
        generation: None,
        ..last(0)
    };
    let no_to_etag = LastUpdate {
        to_etag: None,
        ..last(0)
    };
    // (case, last write, generation now, ETag now, fields differing, resend)
    type Case<'a> = (
        &'a str,
        Option<&'a LastUpdate>,
        i64,
        &'a str,
        &'a [&'a str],
        Option<u32>,
    );
    let cases: [Case<'_>; 10] = [
        ("never written", None, 2, "e0", &[STATUS], None),
        (
            "ETag as sent: not applied",
            Some(&last(0)),
            2,
            "e0",
            &[STATUS],
            Some(1),
        ),
        (
            "ETag as produced: not applied",
            Some(&last(0)),
            2,
            "e1",
            &[STATUS],
            Some(1),
        ),
        (
            "no produced ETag known, as sent",
            Some(&no_to_etag),
            2,
            "e0",
            &[DATE],
            Some(1),
        ),
        (
            "someone else wrote since",
            Some(&last(0)),
            2,
            "e9",
            &[STATUS],
            None,
        ),
        (
            "someone else wrote, produced unknown",
            Some(&no_to_etag),
            2,
            "e1",
            &[STATUS],
            None,
        ),
        (
            "the spec changed since",
            Some(&last(0)),
            3,
            "e0",
            &[STATUS],
            None,
        ),
        (
            "written before generations were kept",
            Some(&no_generation),
            2,
            "e0",
            &[STATUS],
            None,
        ),
        (
            "differs only in a field not written",
            Some(&last(0)),
            2,
            "e0",
            &["Other"],
            None,
        ),
        ("no difference at all", Some(&last(0)), 2, "e0", &[], None),
    ];
    for (case, last, generation, etag, differing, resend) in cases {
        let got = last_write(last, Some(generation), etag, &fields(differing));
        let want = resend.map_or(LastWrite::Fresh, |resends| LastWrite::Resend { resends });
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn after_one_resend_an_unapplied_write_is_given_up_naming_fields_and_etags() {
    let got = last_write(Some(&last(1)), Some(2), "e1", &fields(&[STATUS, "Other"]));
    let LastWrite::NotApplied { message } = got else {
        panic!("{got:?}")
    };
    for needle in [
        "2 PATCHes",
        "of SalesOrderStatus (",
        "If-Match e0",
        "still e1",
        "no one else wrote",
    ] {
        assert!(message.contains(needle), "{needle:?} in {message}");
    }
    assert!(!message.contains("Other"), "{message}");
}

#[test]
fn an_answer_proves_a_write_when_it_shows_every_value_sent() {
    let sent = json!({STATUS: "Delivered", DATE: "2025-02-08T12:00:00Z"});
    let sent = sent.as_object().unwrap();
    let cases = [
        ("204: nothing to contradict it", None, vec![]),
        (
            "200 with the values",
            Some(json!({STATUS: "Delivered", DATE: "2025-02-08T12:00:00Z", "X": 1})),
            vec![],
        ),
        (
            "200, date at another hour of that day",
            Some(json!({STATUS: "Delivered", DATE: "2025-02-08T00:00:00Z"})),
            vec![],
        ),
        (
            "200 with the old status",
            Some(json!({STATUS: "Backorder", DATE: "2025-02-08T12:00:00Z"})),
            vec![STATUS],
        ),
        (
            "200 with the unset date",
            Some(json!({STATUS: "Delivered", DATE: "1900-01-01T12:00:00Z"})),
            vec![DATE],
        ),
        (
            "200 without the fields",
            Some(json!({"X": 1})),
            vec![DATE, STATUS],
        ),
        (
            "200 with a date that is no date",
            Some(json!({STATUS: "Delivered", DATE: 20250208})),
            vec![DATE],
        ),
    ];
    for (case, returned, want) in cases {
        let returned = returned.as_ref().map(|v| v.as_object().unwrap());
        assert_eq!(not_shown(sent, returned, DATE), fields(&want), "{case}");
    }
}

#[test]
fn an_accepted_write_is_updated_only_when_proven_by_a_read_or_a_first_answer() {
    use Evidence::{Answer, Read};
    let sent = fields(&[STATUS]);
    let shown: &[String] = &[];
    let old = fields(&[STATUS]);
    // (resends, fields not shown, evidence, verdict, words of its message)
    type Case<'a> = (u32, &'a [String], Evidence, &'a str, &'a [&'a str]);
    let cases: [Case<'_>; 7] = [
        (0, shown, Answer, "updated", &[]),
        (0, shown, Read, "updated", &[]),
        (1, shown, Read, "updated", &[]),
        (
            1,
            shown,
            Answer,
            "unconfirmed",
            &["again", "If-Match e0", "once a read shows it"],
        ),
        (
            0,
            &old,
            Read,
            "unconfirmed",
            &[
                "the read after it still shows other values in SalesOrderStatus",
                "once more",
            ],
        ),
        (
            0,
            &old,
            Answer,
            "unconfirmed",
            &["its answer still shows other values in SalesOrderStatus"],
        ),
        (
            1,
            &old,
            Read,
            "not applied",
            &[
                "2 PATCHes of SalesOrderStatus",
                "still shows other values",
                "no one else wrote",
                "Not writing again",
            ],
        ),
    ];
    for (resends, not_shown, evidence, want, needles) in cases {
        let (kind, message) = match accepted(resends, &sent, "e0", not_shown, evidence) {
            Accepted::Unconfirmed { message } => ("unconfirmed", message),
            Accepted::NotApplied { message } => ("not applied", message),
            Accepted::Updated => ("updated", String::new()),
        };
        assert_eq!(kind, want, "resend {resends}, {not_shown:?}, {evidence:?}");
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }
    }
}
