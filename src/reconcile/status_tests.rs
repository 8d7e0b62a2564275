use super::*;

fn at(secs: i64) -> Time {
    Time(jiff::Timestamp::from_second(secs).unwrap())
}

fn observed(status: &str) -> ObservedOrder {
    ObservedOrder {
        sales_status: Some(status.into()),
        delivery_date: None,
        etag: Some("W/\"x\"".into()),
    }
}

fn cond<'a>(s: &'a SalesOrderStatusStatus, kind: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == kind).unwrap()
}

fn summary(s: &SalesOrderStatusStatus) -> Vec<(String, String, String)> {
    s.conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

/// The conditions a verdict leaves: Ready always, Reconciling and Stalled
/// only when "True" (abnormal-true conditions are absent otherwise).
fn triple(
    ready: &str,
    reconciling: &str,
    stalled: &str,
    reason: &str,
) -> Vec<(String, String, String)> {
    [
        ("Ready", ready),
        ("Reconciling", reconciling),
        ("Stalled", stalled),
    ]
    .iter()
    .filter(|(t, v)| *t == "Ready" || *v == "True")
    .map(|(t, v)| (t.to_string(), v.to_string(), reason.to_string()))
    .collect()
}

fn failed(reason: Reason) -> Outcome {
    Outcome::Failed {
        reason,
        message: format!("{reason} happened"),
        observed: None,
    }
}

fn not_applied(retrying: bool, update: Option<LastUpdate>) -> Outcome {
    Outcome::NotApplied {
        observed: observed("Backorder"),
        update,
        message: "accepted, not applied".into(),
        retrying,
    }
}

#[test]
fn condition_table() {
    let update = LastUpdate {
        time: "t".into(),
        from_etag: "W/\"a\"".into(),
        to_etag: None,
        attempts: 1,
        fields: vec!["SalesOrderStatus".into()],
        ..LastUpdate::default()
    };
    let cases = vec![
        (
            Outcome::InSync {
                observed: observed("Delivered"),
            },
            triple("True", "False", "False", "InSync"),
        ),
        (
            Outcome::Updated {
                observed: observed("Delivered"),
                update,
            },
            triple("True", "False", "False", "Updated"),
        ),
        (
            Outcome::Drifted {
                observed: observed("Backorder"),
                fields: vec!["SalesOrderStatus".into()],
            },
            triple("False", "False", "True", "Drifted"),
        ),
        (
            Outcome::Suspended,
            triple("True", "False", "False", "Suspended"),
        ),
        (
            failed(Reason::Conflict),
            triple("False", "True", "False", "Conflict"),
        ),
        (
            failed(Reason::Throttled),
            triple("False", "True", "False", "Throttled"),
        ),
        (
            failed(Reason::Unavailable),
            triple("False", "True", "False", "Unavailable"),
        ),
        (
            failed(Reason::Forbidden),
            triple("False", "False", "True", "Forbidden"),
        ),
        (
            failed(Reason::NotFound),
            triple("False", "False", "True", "NotFound"),
        ),
        (
            failed(Reason::Rejected),
            triple("False", "False", "True", "Rejected"),
        ),
        (
            failed(Reason::InvalidTransition),
            triple("False", "False", "True", "InvalidTransition"),
        ),
        (
            failed(Reason::Unauthorized),
            triple("False", "False", "True", "Unauthorized"),
        ),
        (
            failed(Reason::DuplicateOrder),
            triple("False", "False", "True", "DuplicateOrder"),
        ),
        (
            failed(Reason::SecretNotFound),
            triple("False", "False", "True", "SecretNotFound"),
        ),
        (
            failed(Reason::ConnectionNotReady),
            triple("False", "False", "True", "ConnectionNotReady"),
        ),
        (
            not_applied(true, None),
            triple("False", "True", "False", "NotApplied"),
        ),
        (
            not_applied(false, None),
            triple("False", "False", "True", "NotApplied"),
        ),
        (
            failed(Reason::NotApplied),
            triple("False", "False", "True", "NotApplied"),
        ),
    ];
    for (outcome, want) in cases {
        let s = next_status(None, Some(3), &outcome, at(100));
        assert_eq!(summary(&s), want, "{outcome:?}");
        assert_eq!(s.observed_generation, Some(3));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
    }
}

#[test]
fn same_outcome_twice_is_the_same_status() {
    let o = failed(Reason::Forbidden);
    let first = next_status(None, Some(1), &o, at(100));
    let second = next_status(Some(&first), Some(1), &o, at(200));
    assert_eq!(first, second, "no change must mean no write");
}

#[test]
fn in_sync_after_updated_keeps_conditions() {
    let update = LastUpdate {
        time: "t".into(),
        from_etag: "W/\"a\"".into(),
        to_etag: None,
        attempts: 2,
        fields: vec![],
        ..LastUpdate::default()
    };
    let updated = next_status(
        None,
        Some(1),
        &Outcome::Updated {
            observed: observed("Delivered"),
            update,
        },
        at(100),
    );
    let resync = next_status(
        Some(&updated),
        Some(1),
        &Outcome::InSync {
            observed: observed("Delivered"),
        },
        at(700),
    );
    assert_eq!(updated, resync);
}

#[test]
fn transition_time_moves_only_on_status_change() {
    let s1 = next_status(None, Some(1), &failed(Reason::Conflict), at(100));
    let s2 = next_status(Some(&s1), Some(1), &failed(Reason::Unavailable), at(200));
    assert_eq!(
        cond(&s2, "Reconciling").last_transition_time,
        at(100),
        "True -> True keeps the time"
    );
    assert_eq!(cond(&s2, "Reconciling").reason, "Unavailable");
    let s3 = next_status(
        Some(&s2),
        Some(1),
        &Outcome::InSync {
            observed: observed("Delivered"),
        },
        at(300),
    );
    assert_eq!(cond(&s3, "Ready").last_transition_time, at(300));
    assert_eq!(
        cond(&s2, "Ready").last_transition_time,
        at(100),
        "False -> False keeps the time"
    );
    assert!(
        s3.conditions.iter().all(|c| c.type_ == "Ready"),
        "Reconciling and Stalled are removed once no longer true: {:?}",
        summary(&s3)
    );
}

#[test]
fn a_stalled_order_that_recovers_loses_its_stalled_condition() {
    let stalled = next_status(None, Some(1), &failed(Reason::Forbidden), at(100));
    assert_eq!(cond(&stalled, "Stalled").status, "True");
    let retrying = next_status(Some(&stalled), Some(1), &failed(Reason::Conflict), at(200));
    assert_eq!(
        summary(&retrying),
        triple("False", "True", "False", "Conflict")
    );
    assert_eq!(
        cond(&retrying, "Reconciling").last_transition_time,
        at(200),
        "a condition that appears starts its own time"
    );
}

#[test]
fn conflicts_count_per_generation() {
    let s1 = next_status(None, Some(1), &failed(Reason::Conflict), at(1));
    let s2 = next_status(Some(&s1), Some(1), &failed(Reason::Conflict), at(2));
    assert_eq!(s2.conflicts, 2);
    let s3 = next_status(Some(&s2), Some(2), &failed(Reason::Unavailable), at(3));
    assert_eq!(s3.conflicts, 0, "a new generation starts counting afresh");
    let s4 = next_status(Some(&s3), Some(2), &failed(Reason::Conflict), at(4));
    assert_eq!(s4.conflicts, 1);
}

#[test]
fn failure_without_read_keeps_last_observed() {
    let s1 = next_status(
        None,
        Some(1),
        &Outcome::InSync {
            observed: observed("Backorder"),
        },
        at(1),
    );
    let s2 = next_status(Some(&s1), Some(1), &failed(Reason::Unavailable), at(2));
    assert_eq!(s2.observed, Some(observed("Backorder")));
}

#[test]
fn a_conflict_on_an_unchanged_etag_is_flagged() {
    let conflict = |etag: &str| Outcome::Failed {
        reason: Reason::Conflict,
        message: "412".into(),
        observed: Some(ObservedOrder {
            etag: Some(etag.into()),
            ..observed("Backorder")
        }),
    };
    let first = next_status(None, Some(1), &conflict("W/\"a\""), at(1));
    assert!(
        !conflict_without_writer(None, &conflict("W/\"a\"")),
        "a first conflict is just a conflict"
    );
    assert!(
        conflict_without_writer(Some(&first), &conflict("W/\"a\"")),
        "same ETag twice: nobody wrote"
    );
    assert!(
        !conflict_without_writer(Some(&first), &conflict("W/\"b\"")),
        "a moving ETag is a real writer"
    );
    let in_sync = next_status(
        None,
        Some(1),
        &Outcome::InSync {
            observed: observed("Backorder"),
        },
        at(1),
    );
    assert!(
        !conflict_without_writer(Some(&in_sync), &conflict("W/\"x\"")),
        "only after a conflict"
    );
}

#[test]
fn not_applied_keeps_the_write_it_made_and_otherwise_the_last_one() {
    let write = |resends| LastUpdate {
        from_etag: "W/\"a\"".into(),
        resends,
        ..LastUpdate::default()
    };
    let first = next_status(None, Some(1), &not_applied(true, Some(write(0))), at(1));
    assert_eq!(first.last_update, Some(write(0)));
    assert_eq!(first.observed, Some(observed("Backorder")));
    let resent = next_status(
        Some(&first),
        Some(1),
        &not_applied(true, Some(write(1))),
        at(2),
    );
    assert_eq!(resent.last_update, Some(write(1)));
    let given_up = next_status(Some(&resent), Some(1), &not_applied(false, None), at(3));
    assert_eq!(
        given_up.last_update,
        Some(write(1)),
        "a read alone writes no lastUpdate"
    );
    assert_eq!(cond(&given_up, "Stalled").message, "accepted, not applied");
    let recheck = next_status(Some(&given_up), Some(1), &not_applied(false, None), at(4));
    assert_eq!(
        given_up, recheck,
        "a recheck that finds the same writes nothing"
    );
}

#[test]
fn in_sync_after_suspended_replaces_the_suspended_reason() {
    let suspended = next_status(None, Some(1), &Outcome::Suspended, at(1));
    assert_eq!(cond(&suspended, "Ready").status, "True");
    let resumed = next_status(
        Some(&suspended),
        Some(2),
        &Outcome::InSync {
            observed: observed("Delivered"),
        },
        at(2),
    );
    assert_eq!(
        summary(&resumed),
        triple("True", "False", "False", "InSync"),
        "a resumed order must not keep reading Suspended"
    );
    assert_eq!(cond(&resumed, "Ready").observed_generation, Some(2));
    let drifted = next_status(
        Some(&resumed),
        Some(3),
        &Outcome::Drifted {
            observed: observed("Backorder"),
            fields: vec!["SalesOrderStatus".into()],
        },
        at(3),
    );
    assert_eq!(
        summary(&drifted),
        triple("False", "False", "True", "Drifted")
    );
}
