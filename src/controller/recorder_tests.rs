//! What makes a repeat, and the cache's pruning; publishing itself is
//! driven by the e2e `events` tests on the real API server (a repeat there
//! shows as the Event's series count).

use super::*;

fn event(type_: EventType, reason: &str, note: &str) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

fn order(uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("d365.salesops.io/v1alpha1".into()),
        kind: Some("SalesOrderStatus".into()),
        namespace: Some("orders".into()),
        name: Some("so-1".into()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

#[test]
fn a_repeat_is_the_same_type_action_reason_and_object_whatever_its_note() {
    let first = repeat_key(
        &event(EventType::Warning, "Conflict", "attempt 4"),
        &order("u1"),
    );
    let table = [
        (
            event(EventType::Warning, "Conflict", "attempt 9"),
            order("u1"),
            true,
        ),
        (
            event(EventType::Normal, "Conflict", "attempt 4"),
            order("u1"),
            false,
        ),
        (
            event(EventType::Warning, "Throttled", "attempt 4"),
            order("u1"),
            false,
        ),
        (
            event(EventType::Warning, "Conflict", "attempt 4"),
            order("u2"),
            false,
        ),
    ];
    for (e, regarding, repeat) in table {
        assert_eq!(
            repeat_key(&e, &regarding) == first,
            repeat,
            "{:?} {:?}",
            e.reason,
            regarding.uid
        );
    }
}

#[test]
fn published_events_leave_the_cache_once_past_the_series_ttl() {
    let start = Instant::now();
    let mut series = Series {
        by_key: HashMap::new(),
        next_prune: start,
    };
    let published = |last| Published {
        name: "so-1.1".into(),
        count: 1,
        last,
    };
    series.by_key.insert(1, published(start));
    series.by_key.insert(2, published(start + SERIES_TTL));
    series.prune(start + SERIES_TTL + Duration::from_secs(1));
    assert_eq!(series.by_key.keys().collect::<Vec<_>>(), [&2]);
    // An expired one stays until PRUNE_EVERY has passed (repeats check the
    // age themselves), then goes.
    series.by_key.insert(3, published(start));
    series.prune(start + SERIES_TTL + Duration::from_secs(30));
    assert_eq!(series.by_key.len(), 2);
    series.prune(start + SERIES_TTL + PRUNE_EVERY + Duration::from_secs(1));
    assert_eq!(series.by_key.keys().collect::<Vec<_>>(), [&2]);
}

/// At most `MAX_API_WRITES` writes hold a turn at once; a freed turn goes
/// to the next writer.
#[tokio::test]
async fn api_writes_admit_a_bounded_number_at_once() {
    use futures::FutureExt as _;
    let writes = ApiWrites::default();
    let mut held = Vec::new();
    for _ in 0..MAX_API_WRITES {
        held.push(writes.permit().now_or_never().expect("a free turn"));
    }
    assert!(writes.permit().now_or_never().is_none(), "one too many");
    held.pop();
    assert!(writes.permit().now_or_never().is_some(), "a freed turn");
}
