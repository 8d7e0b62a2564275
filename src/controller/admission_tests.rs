//! The admission arithmetic as tables, and one connection's admission:
//! full means turned away at once, paused means Paused whatever the slots.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn limit_is_the_concurrency_within_a_second_of_rate_plus_a_batch() {
    let cases = [
        // (rps, concurrent, batch ops) -> limit
        ((20, 8, None), 8),
        ((1, 8, None), 1),
        ((5, 8, None), 5),
        ((500, 32, None), 32),
        ((0, 0, None), 1),
        ((20, 8, Some(100)), 108),
        ((20, 8, Some(500)), 408),
        ((500, 32, Some(50)), 82),
        ((3, 8, Some(50)), 53),
    ];
    for ((rps, concurrent, batch), want) in cases {
        assert_eq!(
            limit(rps, concurrent, batch),
            want,
            "{rps} rps, {concurrent} concurrent, batch {batch:?}"
        );
    }
}

#[test]
fn throughput_follows_the_hold_time_within_the_rate() {
    let cases = [
        // (limit, mean hold, rps) -> admissions per second
        ((8, None, 20), 20.0),
        ((8, Some(ms(400)), 20), 20.0),
        ((8, Some(ms(800)), 20), 10.0),
        ((1, Some(ms(2000)), 20), 0.5),
        ((8, Some(Duration::ZERO), 20), 20.0),
        ((8, None, 0), 1.0),
    ];
    for ((limit, hold, rps), want) in cases {
        let got = throughput(limit, hold, rps);
        assert!((got - want).abs() < 1e-9, "{limit} {hold:?} {rps}: {got}");
    }
}

#[test]
fn turn_delay_grows_with_the_queue_within_bounds_and_jitter_spreads_it() {
    let cases = [
        // (waiting ahead, per second, jitter) -> delay
        ((0, 10.0, 0.5), ms(100)),
        ((9, 10.0, 0.5), ms(1000)),
        ((99, 10.0, 0.5), ms(10_000)),
        ((99, 10.0, 0.0), ms(5_000)),
        ((99, 10.0, 1.0), ms(15_000)),
        ((0, 1000.0, 0.5), MIN_TURN),
        ((10_000, 10.0, 0.5), MAX_TURN),
        ((10_000, 10.0, 7.0), MAX_TURN * 3 / 2),
        ((5, 0.0, 0.5), MAX_TURN),
    ];
    for ((ahead, per_second, jitter), want) in cases {
        let got = turn_delay(ahead, per_second, jitter);
        let off = got.abs_diff(want);
        assert!(
            off < ms(1),
            "{ahead} at {per_second}/s, jitter {jitter}: {got:?}"
        );
    }
}

#[test]
fn a_full_connection_turns_away_at_once_and_a_returned_ticket_admits_again() {
    let admission = Admission::new(2, 10);
    let a = admission.enter("orders/a", None, 0.5);
    let b = admission.enter("orders/b", None, 0.5);
    assert!(matches!(a, Entry::Admitted(_)), "{a:?}");
    assert!(matches!(b, Entry::Admitted(_)), "{b:?}");
    // 10/s before any ticket came back: one turn is 100 ms, then 200 ms.
    match admission.enter("orders/c", None, 0.5) {
        Entry::Busy(turn) => assert_eq!(turn, ms(100)),
        other => panic!("{other:?}"),
    }
    match admission.enter("orders/d", None, 0.5) {
        Entry::Busy(turn) => assert_eq!(turn, ms(200), "c is waiting ahead of d"),
        other => panic!("{other:?}"),
    }
    match admission.enter("orders/c", None, 0.5) {
        Entry::Busy(turn) => assert_eq!(turn, ms(200), "c does not wait behind itself"),
        other => panic!("{other:?}"),
    }
    drop(a);
    let c = admission.enter("orders/c", None, 0.5);
    assert!(matches!(c, Entry::Admitted(_)), "{c:?}");
    match admission.enter("orders/e", None, 0.5) {
        Entry::Busy(turn) => assert!(turn > ms(100), "d is still waiting: {turn:?}"),
        other => panic!("{other:?}"),
    }
    drop((b, c));
}

#[test]
fn a_paused_connection_is_paused_whatever_its_slots() {
    let admission = Admission::new(1, 10);
    match admission.enter("orders/a", Some(ms(120_000)), 0.5) {
        Entry::Paused(left) => assert_eq!(left, ms(120_000)),
        other => panic!("{other:?}"),
    }
    let held = admission.enter("orders/a", None, 0.5);
    assert!(matches!(held, Entry::Admitted(_)), "the pause took no slot");
    match admission.enter("orders/b", Some(ms(5)), 0.5) {
        Entry::Paused(left) => assert_eq!(left, ms(5), "paused, not merely busy"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn returned_tickets_teach_the_throughput() {
    let admission = Admission::new(4, 1000);
    assert_eq!(admission.throughput(), 1000.0, "unknown hold: the rate");
    let ticket = Ticket {
        _slot: admission.slots.clone().try_acquire_owned().unwrap(),
        started: Instant::now() - ms(400),
        hold_micros: admission.hold_micros.clone(),
    };
    drop(ticket);
    let learned = admission.throughput();
    // 4 tickets of ~400 ms: ~10 admissions per second.
    assert!((9.0..=10.0).contains(&learned), "{learned}");
}

#[test]
fn an_order_that_never_comes_back_leaves_the_queue_once_its_expectation_lapses() {
    let admission = Admission::new(1, 1000);
    let _held = admission.enter("orders/a", None, 0.5);
    assert!(matches!(
        admission.enter("orders/gone", None, 0.0),
        Entry::Busy(_)
    ));
    let ahead = |admission: &Admission| match admission.enter("orders/b", None, 0.0) {
        Entry::Busy(turn) => turn,
        other => panic!("{other:?}"),
    };
    // One waiting ahead of b: the shortest turn either way (1,000/s), so
    // count the queue instead.
    let _ = ahead(&admission);
    assert_eq!(lock(&admission.waiting).orders.len(), 2, "gone and b");
    // Lapsed (as if long past) and past the prune time: the next turn-away
    // drops it.
    {
        let mut waiting = lock(&admission.waiting);
        let past = Instant::now() - ms(10);
        waiting.orders.insert("orders/gone".into(), past);
        waiting.next_prune = past;
    }
    let _ = ahead(&admission);
    let waiting = lock(&admission.waiting);
    assert_eq!(
        waiting
            .orders
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["orders/b"]
    );
}
