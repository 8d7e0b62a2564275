use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::api::SalesOrderStatus;

/// The hash is part of the on-cluster contract (which shard writes which
/// order): these values must never change.
#[test]
fn the_hash_is_pinned() {
    let pinned = [
        (("usmf", "SO-1"), PINNED[0]),
        (("USMF", "000123"), PINNED[1]),
        (("demf", "ÄNDERUNG-7"), PINNED[2]),
        (("", ""), PINNED[3]),
    ];
    for ((company, number), hash) in pinned {
        assert_eq!(order_hash(company, number), hash, "{company}/{number}");
    }
    assert_eq!(shard_of("usmf", "SO-1", 2), (PINNED[0] % 2) as u32);
    assert_eq!(shard_of("usmf", "SO-1", 7), (PINNED[0] % 7) as u32);
}

/// Computed once by an independent implementation (Python) of FNV-1a 64
/// plus SplitMix64's finaliser over `fold(company) 0xFF fold(number)`.
const PINNED: [u64; 4] = [
    0x5bf4_2a05_b292_cb73,
    0x6abb_0392_d7d3_c991,
    0x51bf_84ce_4d99_d1ae,
    0x4f2d_b50f_1240_40cd,
];

#[test]
fn company_and_number_are_not_run_together() {
    assert_ne!(order_hash("ab", "c"), order_hash("a", "bc"));
}

#[test]
fn bad_counts_and_indexes_are_refused() {
    assert_eq!(Shard::new(0, 0), Err(ShardError::NoShards));
    assert_eq!(
        Shard::new(2, 2),
        Err(ShardError::IndexOutOfRange { index: 2, count: 2 })
    );
    let message = Shard::new(3, 2).unwrap_err().to_string();
    assert!(
        message.contains("--shard-index 3") && message.contains("0..=1"),
        "{message}"
    );
    assert!(Shard::new(1, 2).is_ok());
}

#[test]
fn one_shard_keeps_the_lease_name_and_many_get_one_each() {
    assert_eq!(Shard::default().lease_name("op"), "op");
    assert_eq!(Shard::new(0, 1).unwrap().lease_name("op"), "op");
    let names: HashSet<_> = (0..3)
        .map(|i| Shard::new(i, 3).unwrap().lease_name("op"))
        .collect();
    assert_eq!(
        names,
        HashSet::from(["op-shard-0", "op-shard-1", "op-shard-2"].map(String::from))
    );
}

/// The "done when": 10,000 generated orders split over two shards, each in
/// exactly one, together all of them; and roughly evenly over 2..=8.
#[test]
fn ten_thousand_orders_split_disjointly_and_evenly() {
    let orders: Vec<(String, String)> = (0..10_000)
        .map(|n| (format!("c{:02}", n % 17), format!("SO-{n:06}")))
        .collect();
    let shards = [Shard::new(0, 2).unwrap(), Shard::new(1, 2).unwrap()];
    let mut seen = HashSet::new();
    for (company, number) in &orders {
        let takers = shards.iter().filter(|s| s.takes(company, number)).count();
        assert_eq!(takers, 1, "{company}/{number}");
        seen.insert((company, number));
    }
    assert_eq!(seen.len(), orders.len());
    for count in 2..=8u32 {
        let mut sizes = vec![0usize; count as usize];
        for (company, number) in &orders {
            sizes[shard_of(company, number, count) as usize] += 1;
        }
        let even = orders.len() / count as usize;
        for size in &sizes {
            // Binomial spread is ~1-3 % here; 10 % fails only on a bad hash.
            assert!(size.abs_diff(even) < even / 10, "{count}: {sizes:?}");
        }
    }
}

#[test]
fn the_filter_reads_the_spec() {
    let a = SalesOrderStatus::test(1).for_order("USMF", "SO-1");
    let b = SalesOrderStatus::test(2).for_order("usmf", "so-1  ");
    let home = shard_of("usmf", "so-1", 3);
    for i in 0..3 {
        let shard = Shard::new(i, 3).unwrap();
        assert_eq!(shard.takes_order(&a), i == home);
        assert_eq!(shard.takes_order(&b), i == home);
    }
    assert!(Shard::default().takes_order(&a));
}

/// Spellings the duplicate check treats as one order: case (Unicode, not
/// just ASCII) and trailing spaces.
fn spelling() -> impl Strategy<Value = (String, String)> {
    ("[a-zA-Z0-9äÄöÖσΣéÉ-]{0,12}", 0..3usize, any::<u64>()).prop_map(|(s, spaces, seed)| {
        let mixed: String = s
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if seed >> (i % 64) & 1 == 1 {
                    c.to_uppercase().collect::<String>()
                } else {
                    c.to_lowercase().collect()
                }
            })
            .collect();
        (s, format!("{mixed}{}", " ".repeat(spaces)))
    })
}

proptest! {
    #[test]
    fn duplicates_always_share_a_shard(
        (company, company2) in spelling(),
        (number, number2) in spelling(),
        count in 1..64u32,
    ) {
        prop_assume!(fold(&company) == fold(&company2) && fold(&number) == fold(&number2));
        prop_assert_eq!(
            shard_of(&company, &number, count),
            shard_of(&company2, &number2, count)
        );
    }
}

#[test]
fn events_of_other_shards_are_dropped_and_the_rest_pass() {
    let order = SalesOrderStatus::test(1).for_order("USMF", "SO-1");
    let home = Shard::new(shard_of("USMF", "SO-1", 2), 2).unwrap();
    let other = Shard::new(1 - home.index(), 2).unwrap();
    let events = || {
        [
            Event::Apply(order.clone()),
            Event::InitApply(order.clone()),
            Event::Delete(order.clone()),
        ]
    };
    for event in events() {
        assert!(home.keep(event).is_some());
    }
    for event in events() {
        assert!(other.keep(event).is_none());
    }
    assert!(matches!(other.keep(Event::Init), Some(Event::Init)));
    assert!(matches!(other.keep(Event::InitDone), Some(Event::InitDone)));
}
