//! The objects of tests/e2e/health.rs: one emulator per fault (faults are
//! per environment), a D365Connection per connection row, and an order per
//! order row, each named after its row's `object`
//! (`sales_order_operator::health::ROWS`).

use d365_emulator::{Emulator, Faults};
use kube::Client;
use sales_order_operator::api::{D365Connection, SalesOrderStatus, SalesStatus};
use sales_order_operator::fixtures::{self, Placed};

use crate::support::{create_connection, create_orders, create_secret, emulator};

/// The emulators, kept alive for the test.
pub struct Environments {
    _emulators: Vec<Emulator>,
}

/// A connection `name` to `emu`.
fn connection(name: &str, emu: &Emulator) -> D365Connection {
    D365Connection::test(&emu.url()).named(name)
}

/// Order `n` of an emulator, named `name`, through connection `via`.
fn order(name: &str, n: usize, via: &str) -> SalesOrderStatus {
    SalesOrderStatus::test(n).named(name).via(via)
}

/// An emulator with 5 orders and `faults`, and connection `name` to it.
async fn faulty(client: &Client, ns: &str, name: &str, faults: Faults) -> Emulator {
    let emu = emulator(5, faults).await;
    create_connection(client, ns, connection(name, &emu)).await;
    emu
}

/// Creates every object of the table in `ns`; the operator is not running.
pub async fn create_all(client: &Client, ns: &str) -> Environments {
    let mut emulators = faulty_environments(client, ns).await;
    emulators.push(healthy_environment(client, ns).await);
    create_orders(client, ns, orders()).await;
    Environments {
        _emulators: emulators,
    }
}

/// The Secrets, and the connections to a working emulator (also the
/// broken ones: their fault is in the object, not in D365).
async fn healthy_environment(client: &Client, ns: &str) -> Emulator {
    create_secret(client, ns, fixtures::secret()).await;
    let mut wrong = fixtures::secret().named("wrong-credentials");
    wrong.string_data = Some([(fixtures::SECRET_KEY.into(), "not-the-secret".into())].into());
    create_secret(client, ns, wrong).await;

    let ok = emulator(6, Faults::default()).await;
    // Someone invoiced order 6 in D365: the connection's finalStatuses
    // forbid leaving Invoiced.
    let invoiced = [("SalesOrderStatus".to_owned(), "Invoiced".into())];
    ok.external_write(
        "usmf",
        &fixtures::order_number(6),
        invoiced.into_iter().collect(),
    )
    .expect("order 6 exists");
    let mut conns = vec![
        connection("conn-ok", &ok),
        connection("conn-wrong-secret", &ok),
        connection("conn-no-secret", &ok),
        connection("conn-no-field", &ok),
        connection("conn-no-entity-set", &ok),
    ];
    let secret_of = |c: &mut D365Connection, name: &str| {
        c.spec
            .auth
            .client_secret_ref
            .as_mut()
            .expect("a client secret")
            .name = name.into();
    };
    secret_of(&mut conns[1], "wrong-credentials");
    secret_of(&mut conns[2], "no-such-secret");
    conns[3].spec.fields.sales_status = "NoSuchField".into();
    conns[4].spec.entity_set = "NoSuchOrders".into();
    // Nothing listens on port 1: the token request is refused.
    let mut unreachable = D365Connection::test("http://127.0.0.1:1").named("conn-unreachable");
    unreachable.spec.request_timeout_seconds = 2;
    conns.push(unreachable);
    for c in conns {
        create_connection(client, ns, c).await;
    }
    ok
}

/// One emulator per fault, each with its connection.
async fn faulty_environments(client: &Client, ns: &str) -> Vec<Emulator> {
    let with = |edit: fn(&mut Faults)| {
        let mut f = Faults::default();
        edit(&mut f);
        f
    };
    let cases = [
        ("conn-conflicting", with(|f| f.conflict_rate = 1.0)),
        ("conn-throttled", with(|f| f.throttle_retry_after = Some(5))),
        (
            "conn-no-metadata",
            with(|f| (f.error_rate, f.error_status) = (1.0, 503)),
        ),
        (
            "conn-forbidding",
            with(|f| f.read_only_companies = vec!["usmf".into()]),
        ),
        (
            "conn-rejecting",
            with(|f| f.final_statuses = vec!["Backorder".into()]),
        ),
        (
            "conn-not-editable",
            with(|f| f.read_only_fields = vec!["SalesOrderStatus".into()]),
        ),
        (
            "conn-ignoring",
            with(|f| f.ignore_writes = vec!["SalesOrderStatus".into()]),
        ),
    ];
    let mut emulators = Vec::new();
    for (name, faults) in cases {
        emulators.push(faulty(client, ns, name, faults).await);
    }
    emulators
}

/// One order per order row, through the connection that makes its case.
fn orders() -> [SalesOrderStatus; 16] {
    let status_only = |o: SalesOrderStatus| o.delivering(None);
    [
        order("order-updated", 1, "conn-ok"),
        status_only(order("order-in-sync", 2, "conn-ok").wanting(SalesStatus::Backorder)),
        order("order-drifted", 3, "conn-ok").observing(),
        order("order-suspended", 4, "conn-ok").suspended(),
        order("order-not-found", 1, "conn-ok").for_order("USMF", "SO-NOT-THERE"),
        order("order-no-secret", 5, "conn-no-secret"),
        order("order-invalid-transition", 6, "conn-ok"),
        // Created after order-updated, and named after it: younger either way.
        order("order-updated-duplicate", 1, "conn-ok"),
        order("order-no-connection", 1, "conn-missing"),
        order("order-conflict", 1, "conn-conflicting"),
        order("order-throttled", 1, "conn-throttled"),
        order("order-unavailable", 1, "conn-no-metadata"),
        order("order-forbidden", 1, "conn-forbidding"),
        order("order-rejected", 1, "conn-rejecting"),
        status_only(order("order-not-editable", 1, "conn-not-editable")),
        status_only(order("order-not-applied", 1, "conn-ignoring")),
    ]
}
