//! End to end, issue 11: what F&O answers today. Order numbers with `/`,
//! `+` and `\` (encoded twice, as F&O's routing wants) converge; D365's
//! validation errors as 400 (Infolog) and 500 (AxODataWriteException) end
//! Stalled/Rejected with D365's message; a Web API 404 (no route) is told
//! apart from an order that does not exist.

use crate::support::{Env, create_connection, create_orders, env, wait_reason};
use d365_emulator::Faults;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::{ConditionType, D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::Placed;
use serde_json::json;

const LONG: [&str; 2] = ["--stalled-recheck", "1h"];

/// Puts order `number` into the emulator in `status`.
fn seed(env: &Env, number: &str, status: &str) {
    env.emu.put_order(json!({
        "dataAreaId": "usmf", "SalesOrderNumber": number, "SalesOrderStatus": status
    }));
}

/// An object for D365 order `number`, wanted Delivered.
fn object(name: &str, number: &str) -> SalesOrderStatus {
    SalesOrderStatus::test(1)
        .named(name)
        .for_order("USMF", number)
}

/// The connection's own table of final statuses emptied, so the write out
/// of a final status goes out and D365's business validation answers.
async fn no_final_statuses(env: &Env) {
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = json!({"spec": {"finalStatuses": []}});
    conns
        .patch("usmf", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("clear finalStatuses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_numbers_with_slash_plus_and_backslash_converge() {
    let env = env("keys", 1, Faults::default()).await;
    let numbers = [("slash", "SO/2025/0145"), ("plus", "SO+2025\\0146")];
    for (_, number) in numbers {
        seed(&env, number, "Backorder");
    }
    create_orders(&env.client, &env.ns, numbers.map(|(n, k)| object(n, k))).await;
    let _op = env.operator(&[]);
    for (name, number) in numbers {
        wait_reason(&env, name, "Updated").await;
        let stored = env.emu.order("usmf", number).unwrap();
        assert_eq!(stored["SalesOrderStatus"], "Delivered", "{number}");
        let writes = env.client_writes();
        let mine = writes.iter().filter(|w| w.sales_order_number == number);
        assert_eq!(mine.count(), 1, "{number}: one write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_as_400_and_500_end_stalled_rejected_with_d365_text() {
    let env = env("validation", 1, Faults::default()).await;
    no_final_statuses(&env).await;
    let _op = env.operator(&LONG);
    for (status, name, number) in [(400, "infolog", "SO-V400"), (500, "axwrite", "SO-V500")] {
        env.emu.set_faults(Faults {
            validation_status: status,
            ..Faults::default()
        });
        seed(&env, number, "Invoiced");
        create_orders(&env.client, &env.ns, [object(name, number)]).await;
        let o = wait_reason(&env, name, "Rejected").await;
        let stalled = o.condition(ConditionType::Stalled).unwrap();
        assert_eq!(stalled.status, "True", "{name}");
        let message = &o.ready_condition().unwrap().message;
        assert!(
            message.contains(&format!("rejected ({status})")),
            "{message}"
        );
        assert!(message.contains("Write failed for table row"), "{message}");
        assert!(
            message.contains("cannot be changed from status Invoiced to Delivered"),
            "{message}"
        );
        assert_eq!(
            env.emu.order("usmf", number).unwrap()["SalesOrderStatus"],
            "Invoiced"
        );
    }
    assert!(env.client_writes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_404_is_told_apart_from_a_missing_order() {
    let env = env("routes", 1, Faults::default()).await;
    let mut wrong = D365Connection::test(&env.emu.url()).named("wrong-set");
    wrong.spec.entity_set = "SalesOrderHeaders".into();
    create_connection(&env.client, &env.ns, wrong).await;
    let misrouted = SalesOrderStatus::test(1)
        .named("misrouted")
        .via("wrong-set");
    let missing = object("missing", "SO-NOPE");
    create_orders(&env.client, &env.ns, [misrouted, missing]).await;
    let _op = env.operator(&LONG);
    let route = wait_reason(&env, "misrouted", "NotFound").await;
    let route = &route.ready_condition().unwrap().message;
    assert!(
        route.contains("no such route (check the connection's url and entitySet)"),
        "{route}"
    );
    assert!(route.contains("No HTTP resource was found"), "{route}");
    let order = wait_reason(&env, "missing", "NotFound").await;
    let order = &order.ready_condition().unwrap().message;
    assert!(order.contains("order not found"), "{order}");
    assert!(
        order.contains("SO-NOPE") && !order.contains("route"),
        "{order}"
    );
}
