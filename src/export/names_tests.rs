use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn keys(pairs: &[(&str, &str)]) -> Vec<OrderKey> {
    pairs.iter().map(|(c, n)| OrderKey::new(*c, *n)).collect()
}

#[test]
fn plain_numbers_are_their_own_names() {
    let got = object_names(&keys(&[("usmf", "SO-2025-0001"), ("USMF", "so42")])).unwrap();
    assert_eq!(got, ["so-2025-0001", "so42"]);
}

#[test]
fn other_numbers_are_sanitized_with_a_hash() {
    let got = object_names(&keys(&[
        ("usmf", "SO/1"),
        ("usmf", "SO-1"),
        ("usmf", "SO 1"),
        ("usmf", "-SO-1-"),
        ("usmf", "SO--1"),
        ("usmf", "///"),
        ("usmf", "ÄÖ-1"),
    ]))
    .unwrap();
    assert_eq!(got[1], "so-1");
    for (i, name) in got.iter().enumerate().filter(|(i, _)| *i != 1) {
        let (base, hash) = name.split_once("--").unwrap_or_else(|| panic!("{name}"));
        assert_eq!(hash.len(), SHORT_HASH, "{name}");
        let want_base = ["so-1", "", "so-1", "so-1", "so-1", "order", "1"][i];
        assert_eq!(base, want_base, "{name}");
    }
    assert_eq!(
        got.iter().collect::<HashSet<_>>().len(),
        got.len(),
        "{got:?}"
    );
    // The same key gives the same name in another export.
    assert_eq!(object_names(&keys(&[("usmf", "SO/1")])).unwrap()[0], got[0]);
}

#[test]
fn several_companies_prefix_every_name() {
    let got = object_names(&keys(&[
        ("usmf", "SO-1"),
        ("DEMF", "SO-1"),
        ("demf", "A/B"),
    ]))
    .unwrap();
    assert_eq!(got[0], "usmf-so-1");
    assert_eq!(got[1], "demf-so-1");
    assert!(got[2].starts_with("demf-a-b--"), "{}", got[2]);
}

#[test]
fn long_numbers_are_cut_to_a_label() {
    let long = "X".repeat(200);
    let got = object_names(&keys(&[("usmf", &long), ("demf", &long)])).unwrap();
    for name in &got {
        assert!(is_dns_label(name), "{name}");
    }
    assert_ne!(got[0], got[1]);
}

#[test]
fn dns_labels() {
    for good in ["a", "so-1", "0a", &"a".repeat(63)] {
        assert!(is_dns_label(good), "{good}");
    }
    for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
}

/// Company and number text, from the plausible to the hostile.
fn key_strategy() -> impl Strategy<Value = (String, String)> {
    let company = prop_oneof!["[a-zA-Z0-9]{1,4}", "\\PC{0,6}"];
    let number = prop_oneof![
        "[A-Z]{1,3}[-/ ]?[0-9]{1,4}",
        "[a-zA-Z0-9-]{1,20}",
        "\\PC{0,30}",
    ];
    (company, number)
}

proptest! {
    #[test]
    fn names_are_valid_and_distinct(pairs in proptest::collection::vec(key_strategy(), 1..40)) {
        let mut seen = HashSet::new();
        let keys: Vec<OrderKey> = pairs
            .into_iter()
            .map(|(c, n)| OrderKey::new(c, n))
            .filter(|k| seen.insert(identity(k)))
            .collect();
        let names = object_names(&keys).unwrap();
        prop_assert_eq!(names.len(), keys.len());
        for name in &names {
            prop_assert!(is_dns_label(name), "{}", name);
        }
        let distinct: HashSet<_> = names.iter().collect();
        prop_assert_eq!(distinct.len(), names.len(), "{:?} {:?}", keys, names);
    }
}
