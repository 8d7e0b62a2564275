use super::*;

const MS: Duration = Duration::from_millis(1);

fn aimd(ceiling: u32) -> Aimd {
    Aimd::new(NonZeroU32::new(ceiling).unwrap())
}

/// Feeds `n` answers of `latency`, one per `latency`, with the limit in use.
fn feed(a: &mut Aimd, now: &mut Instant, n: usize, latency: Duration) {
    for _ in 0..n {
        *now += latency;
        let in_flight = a.limit();
        a.on_answer(*now, latency, in_flight);
    }
}

/// Feeds answers at the floor until the limit reaches `target`.
fn grow_to(a: &mut Aimd, now: &mut Instant, target: u32) {
    while a.limit() < target {
        feed(a, now, 1, 20 * MS);
    }
    assert_eq!(a.limit(), target);
}

#[test]
fn starts_at_eight_or_the_ceiling() {
    assert_eq!(aimd(64).limit(), 8);
    assert_eq!(aimd(3).limit(), 3);
    assert_eq!(aimd(1).limit(), 1);
}

#[test]
fn rises_about_one_per_round_trip_while_latency_stays_at_the_floor() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    // One round trip = `limit` answers: 8 + 9 + … + 15 answers → about 16.
    feed(&mut a, &mut now, (8..16).sum(), 20 * MS);
    assert!((15..=16).contains(&a.limit()), "{}", a.limit());
}

#[test]
fn holds_under_the_ceiling() {
    let mut a = aimd(12);
    let mut now = Instant::now();
    feed(&mut a, &mut now, 10_000, 20 * MS);
    assert_eq!(a.limit(), 12);
}

#[test]
fn an_idle_limit_does_not_grow() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    for _ in 0..1_000 {
        now += 20 * MS;
        a.on_answer(now, 20 * MS, 1);
    }
    assert_eq!(a.limit(), 8);
}

#[test]
fn halves_on_429_once_per_burst() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    grow_to(&mut a, &mut now, 32);
    a.on_throttle(now);
    assert_eq!(a.limit(), 16);
    a.on_throttle(now + 10 * MS);
    assert_eq!(a.limit(), 16, "the same burst's 429s count once");
    a.on_throttle(now + 1_000 * MS);
    assert_eq!(a.limit(), 8, "a later 429 halves again");
}

#[test]
fn backs_off_when_latency_climbs_above_the_floor() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    grow_to(&mut a, &mut now, 20);
    now += 40 * MS;
    a.on_answer(now, 40 * MS, 20);
    assert_eq!(a.limit(), 15, "× 0.75");
    now += 5 * MS;
    a.on_answer(now, 40 * MS, 20);
    assert_eq!(a.limit(), 15, "one back-off per round trip");
    now += 40 * MS;
    a.on_answer(now, 40 * MS, 20);
    assert_eq!(a.limit(), 11);
    // Latency within the tolerance neither grows nor shrinks it much.
    let before = a.limit();
    now += 29 * MS;
    a.on_answer(now, 29 * MS, 11);
    assert!(a.limit() >= before);
}

#[test]
fn never_below_one() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    for _ in 0..50 {
        now += 2_000 * MS;
        a.on_throttle(now);
        assert!(a.limit() >= 1);
    }
    assert_eq!(a.limit(), 1);
    feed(&mut a, &mut now, 1, 10 * MS);
    feed(&mut a, &mut now, 10, 500 * MS);
    assert_eq!(a.limit(), 1);
}

#[test]
fn the_floor_follows_a_slower_environment_after_two_windows() {
    let mut a = aimd(64);
    let mut now = Instant::now();
    feed(&mut a, &mut now, 1, 10 * MS);
    // From now on 100 ms is normal: at first it is far above the floor…
    now += FLOOR_WINDOW * 2 + MS;
    a.on_answer(now, 100 * MS, 8);
    assert!(a.limit() < 8, "backed off against the old floor");
    // …two windows later it is the floor, and the limit grows again.
    let low = a.limit();
    now += FLOOR_WINDOW;
    feed(&mut a, &mut now, 300, 100 * MS);
    assert!(a.limit() > low, "{} > {low}", a.limit());
}
