use super::*;
use crate::api::ObservedOrder;

fn failed(reason: Reason) -> Outcome {
    Outcome::Failed {
        reason,
        message: format!("{reason} happened"),
        observed: None,
    }
}

fn updated(to_etag: Option<&str>) -> Outcome {
    Outcome::Updated {
        observed: ObservedOrder::default(),
        update: LastUpdate {
            time: "2026-01-01T00:00:00Z".into(),
            from_etag: "W/\"1\"".into(),
            to_etag: to_etag.map(str::to_owned),
            attempts: 1,
            fields: vec!["SalesOrderStatus".into()],
            generation: Some(1),
            resends: 0,
        },
    }
}

fn in_sync() -> Outcome {
    Outcome::InSync {
        observed: ObservedOrder::default(),
    }
}

fn drifted() -> Outcome {
    Outcome::Drifted {
        observed: ObservedOrder::default(),
        fields: vec!["SalesOrderStatus".into()],
    }
}

fn reasons(
    previous: Previous<'_>,
    outcome: &Outcome,
    attempts: u32,
) -> Option<(EventType, Reason)> {
    order_note(previous, outcome, attempts).map(|n| (n.type_, n.reason))
}

#[test]
fn an_update_names_both_etags_or_says_the_new_one_is_unknown() {
    let known = order_note(Some(("InSync", false)), &updated(Some("W/\"2\"")), 1).unwrap();
    assert_eq!(
        known.note,
        "PATCHed SalesOrderStatus (If-Match W/\"1\", new ETag W/\"2\")"
    );
    let unknown = order_note(Some(("InSync", false)), &updated(None), 1).unwrap();
    assert!(!unknown.note.contains('?'), "{}", unknown.note);
    assert!(unknown.note.contains("no new ETag"), "{}", unknown.note);
}

#[test]
fn the_same_situation_again_publishes_nothing() {
    for outcome in [
        drifted(),
        Outcome::Suspended,
        failed(Reason::NotFound),
        failed(Reason::SecretNotFound),
        in_sync(),
    ] {
        let reason = outcome.reason().as_str();
        let previous = Some((reason, outcome.is_stalled()));
        assert_eq!(reasons(previous, &outcome, 1), None, "{reason}");
    }
}

#[test]
fn each_new_situation_publishes_one_event_of_its_kind() {
    let warning = EventType::Warning;
    assert_eq!(
        reasons(Some(("InSync", false)), &drifted(), 1),
        Some((warning, Reason::Drifted))
    );
    assert_eq!(
        reasons(None, &Outcome::Suspended, 1),
        Some((EventType::Normal, Reason::Suspended))
    );
    assert_eq!(
        reasons(Some(("Suspended", false)), &failed(Reason::NotFound), 1),
        Some((warning, Reason::NotFound))
    );
    assert_eq!(
        reasons(Some(("Drifted", false)), &in_sync(), 1),
        Some((EventType::Normal, Reason::InSync)),
        "a recovery is news"
    );
}

#[test]
fn an_order_already_right_or_just_written_is_no_news_when_in_sync() {
    assert_eq!(reasons(None, &in_sync(), 1), None);
    assert_eq!(reasons(Some(("Updated", false)), &in_sync(), 1), None);
}

#[test]
fn a_recovery_is_news_only_from_an_announced_failure() {
    let throttled = Some(("Throttled", false));
    assert_eq!(reasons(throttled, &in_sync(), 2), None, "a fast retry");
    assert_eq!(
        reasons(throttled, &in_sync(), FAST_RETRIES + 2),
        Some((EventType::Normal, Reason::InSync))
    );
}

#[test]
fn transient_failures_publish_once_when_the_fast_retries_are_spent() {
    let conflict = failed(Reason::Conflict);
    let published: Vec<u32> = (1..=10)
        .filter(|&n| {
            let previous = (n > 1).then_some(("Conflict", false));
            order_note(previous, &conflict, n).is_some()
        })
        .collect();
    assert_eq!(published, vec![FAST_RETRIES + 1]);
    // A different transient reason later is a new transition.
    assert_eq!(
        reasons(
            Some(("Conflict", false)),
            &failed(Reason::Throttled),
            FAST_RETRIES + 3
        ),
        Some((EventType::Warning, Reason::Throttled))
    );
    assert_eq!(reasons(None, &failed(Reason::Unavailable), 1), None);
}

#[test]
fn a_write_not_applied_publishes_when_it_stalls_after_its_resend() {
    let not_applied = |retrying| Outcome::NotApplied {
        observed: ObservedOrder::default(),
        update: None,
        message: "not applied".into(),
        retrying,
    };
    assert_eq!(
        reasons(Some(("Updated", false)), &not_applied(true), 1),
        None
    );
    assert_eq!(
        reasons(Some(("NotApplied", false)), &not_applied(false), 1),
        Some((EventType::Warning, Reason::NotApplied))
    );
    assert_eq!(
        reasons(Some(("NotApplied", true)), &not_applied(false), 1),
        None
    );
}

#[test]
fn connections_publish_on_each_change_of_reason() {
    let missing = connection_note(None, false, Reason::SecretNotFound, "no Secret").unwrap();
    assert_eq!(
        (missing.type_, missing.reason, missing.note.as_str()),
        (EventType::Warning, Reason::SecretNotFound, "no Secret")
    );
    assert_eq!(
        connection_note(Some("SecretNotFound"), false, Reason::SecretNotFound, "x"),
        None
    );
    let fixed =
        connection_note(Some("SecretNotFound"), true, Reason::Authenticated, "token").unwrap();
    assert_eq!(fixed.type_, EventType::Normal);
    let degraded = connection_note(
        Some("Authenticated"),
        true,
        Reason::MetadataUnavailable,
        "x",
    )
    .unwrap();
    assert_eq!(degraded.type_, EventType::Warning);
}
