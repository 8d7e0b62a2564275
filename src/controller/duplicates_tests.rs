//! Tables: which URLs are one environment, which key parts are one order,
//! and which object writes.

use super::*;
use crate::api::SalesStatus;
use crate::fixtures::Placed;

#[test]
fn environment_urls_that_reach_one_environment_are_equal() {
    let canonical = "https://contoso.operations.dynamics.com";
    let same = [
        "https://contoso.operations.dynamics.com",
        "https://contoso.operations.dynamics.com/",
        "https://contoso.operations.dynamics.com//",
        "HTTPS://Contoso.Operations.Dynamics.COM",
        "https://contoso.operations.dynamics.com:443/",
        "https://contoso.operations.dynamics.com./",
        "  https://contoso.operations.dynamics.com  ",
        "https://user:password@contoso.operations.dynamics.com",
        "https://contoso.operations.dynamics.com/a/..",
    ];
    for raw in same {
        assert_eq!(environment_url(raw).as_deref(), Some(canonical), "{raw:?}");
    }
    let with_path = [
        ("https://host.example/Env1/", "https://host.example/env1"),
        ("http://host.example:80/x", "http://host.example/x"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ];
    for (raw, want) in with_path {
        assert_eq!(environment_url(raw).as_deref(), Some(want), "{raw:?}");
    }
}

#[test]
fn environment_urls_of_other_environments_differ() {
    let base = environment_url("https://contoso.operations.dynamics.com");
    let others = [
        "http://contoso.operations.dynamics.com",
        "https://contoso.operations.dynamics.com:8443",
        "https://contoso-uat.operations.dynamics.com",
        "https://contoso.operations.dynamics.com/other",
    ];
    for raw in others {
        assert_ne!(environment_url(raw), base, "{raw:?}");
    }
    for broken in [
        "",
        "contoso.operations.dynamics.com",
        "https://",
        "mailto:x@y",
    ] {
        assert_eq!(environment_url(broken), None, "{broken:?}");
    }
}

#[test]
fn a_connection_without_a_usable_url_is_only_itself() {
    let conn = D365Connection::test("https://Contoso.example/");
    assert_eq!(
        environment(Some(&conn), "a", "usmf"),
        Environment::Url("https://contoso.example".into())
    );
    let missing = Environment::Connection {
        namespace: "a".into(),
        name: "usmf".into(),
    };
    assert_eq!(environment(None, "a", "usmf"), missing);
    let broken = D365Connection::test("not a url");
    assert_eq!(environment(Some(&broken), "a", "usmf"), missing);
}

#[test]
fn key_parts_fold_as_the_sql_collation_compares() {
    let same = [
        ("SO-1", "so-1"),
        ("USMF", "usmf"),
        ("SO-1  ", "so-1"),
        ("ÄNDERUNG-1", "änderung-1"),
        ("ΣΟ-1", "σο-1"),
    ];
    for (a, b) in same {
        assert_eq!(fold(a), fold(b), "{a:?} vs {b:?}");
    }
    for (a, b) in [("SO-1", "SO-01"), (" SO-1", "SO-1"), ("SO-1", "SO-1a")] {
        assert_ne!(fold(a), fold(b), "{a:?} vs {b:?}");
    }
}

#[test]
fn order_key_ignores_everything_but_company_and_number() {
    let a = SalesOrderStatus::test(1).for_order("USMF", "SO-1");
    let b = SalesOrderStatus::test(2)
        .for_order("usmf", "so-1")
        .wanting(SalesStatus::Canceled);
    assert_eq!(order_key(&a.spec), order_key(&b.spec));
    assert_eq!(order_key(&a.spec), ("usmf".into(), "so-1".into()));
}

/// A claim on SO-1 by `ns/name` through connection `conn`, created at `t`.
fn claim(ns: &str, name: &str, conn: &str, t: i64) -> Claim {
    Claim::of(
        &SalesOrderStatus::test(1)
            .named(name)
            .in_namespace(ns)
            .via(conn)
            .created_at(t),
    )
}

/// Connections `a/usmf`, `b/usmf` and `b/alias` reach one environment,
/// `b/uat` another; anything else is unresolved.
fn env_of(c: &Claim) -> Environment {
    let url = match (&*c.namespace, &*c.connection) {
        ("a", "usmf") | ("b", "usmf") | ("b", "alias") => "https://prod.example",
        ("b", "uat") => "https://uat.example",
        _ => return environment(None, &c.namespace, &c.connection),
    };
    Environment::Url(url.into())
}

#[test]
fn the_oldest_claim_in_one_environment_owns_the_order() {
    let old_a = claim("a", "x", "usmf", 100);
    let new_b = claim("b", "y", "usmf", 200);
    let alias_b = claim("b", "z", "alias", 50);
    let uat_b = claim("b", "u", "uat", 10);
    let tie_a = claim("a", "w", "usmf", 200);
    let no_conn = claim("c", "v", "gone", 1);
    let mut deleting = claim("a", "d", "usmf", 1);
    deleting.deleting = true;
    let mut me_deleting = claim("a", "x", "usmf", 100);
    me_deleting.deleting = true;
    let none: Option<&str> = None;
    // (me, others, the owner other than me)
    let table: Vec<(&Claim, Vec<&Claim>, Option<&str>)> = vec![
        (&old_a, vec![], none),
        (&old_a, vec![&old_a], none),
        (&old_a, vec![&old_a, &new_b], none),
        (&new_b, vec![&old_a, &new_b], Some("a/x")),
        (&old_a, vec![&new_b, &alias_b], Some("b/z")),
        (&old_a, vec![&uat_b], none),
        (&uat_b, vec![&old_a, &alias_b], none),
        (&new_b, vec![&tie_a], Some("a/w")),
        (&tie_a, vec![&new_b], none),
        (&old_a, vec![&no_conn], none),
        (&no_conn, vec![&old_a], none),
        (&old_a, vec![&deleting], none),
        (&me_deleting, vec![&new_b], Some("b/y")),
    ];
    for (i, (me, others, want)) in table.into_iter().enumerate() {
        let others: Vec<Claim> = others.into_iter().cloned().collect();
        let got = owner_other_than(me, &others, env_of).map(ToString::to_string);
        assert_eq!(got.as_deref(), want, "row {i}: {me} among {others:?}");
    }
}

#[test]
fn an_unknown_creation_time_never_displaces_a_known_one() {
    let mut unknown = claim("a", "a", "usmf", 0);
    unknown.created = None;
    let known = claim("b", "z", "usmf", 1_000);
    assert!(known.outranks(&unknown));
    assert_eq!(
        owner_other_than(&unknown, std::slice::from_ref(&known), env_of).map(ToString::to_string),
        Some("b/z".into())
    );
}
