//! Issue 13 item 1: every row of the health table
//! (`sales_order_operator::health::ROWS`, mirrored in docs/operations.md)
//! happens here on the real control plane, with the emulator and the
//! operator binary, and each column is read off the live object: its
//! conditions, the real kstatus library, the Argo CD Lua scripts and real
//! `kubectl wait --for=condition=Ready`.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::{D365Connection, SalesOrderStatus};
use sales_order_operator::fixtures::Placed;
use sales_order_operator::health::{self, Phase, ROWS, Row};
use serde_json::{Value, json};

use crate::kstatus::{argocd, kstatus, kubectl_wait, live_objects};
use crate::support::Operator;

/// What one row reads on the live object, in the table's columns.
#[derive(Debug, PartialEq)]
struct Reading {
    conditions: String,
    kstatus: String,
    argocd: String,
    kubectl_wait: String,
}

fn expected(r: &Row) -> Reading {
    Reading {
        conditions: r.conditions.into(),
        kstatus: r.kstatus.into(),
        argocd: r.argocd.into(),
        kubectl_wait: r.kubectl_wait.into(),
    }
}

fn live<'a>(objects: &'a [(String, String, Value)], r: &Row) -> Option<&'a Value> {
    objects
        .iter()
        .find(|(kind, name, _)| kind == r.kind && name == r.object)
        .map(|(_, _, v)| v)
}

/// Waits until every row of `phase` shows its conditions, then reads the
/// other columns once and asserts them all, listing every mismatch.
async fn check_phase(cp: &testkit::ControlPlane, client: &Client, ns: &str, phase: Phase) {
    let rows: Vec<&Row> = ROWS.iter().filter(|r| r.phase == phase).collect();
    let settled = testkit::wait_for(Duration::from_secs(90), || async {
        let objects = live_objects(client, ns).await;
        rows.iter()
            .all(|r| live(&objects, r).is_some_and(|o| health::conditions(o) == r.conditions))
            .then_some(objects)
    })
    .await;
    let objects = match settled {
        Ok(objects) => objects,
        Err(_) => live_objects(client, ns).await,
    };
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            live(&objects, r)
                .unwrap_or_else(|| panic!("{} {} exists", r.kind, r.object))
                .clone()
        })
        .collect();
    let verdicts = kstatus(&values);
    let mut wrong = Vec::new();
    for ((r, obj), verdict) in rows.iter().zip(&values).zip(&verdicts) {
        let got = Reading {
            conditions: health::conditions(obj),
            kstatus: verdict.status.clone(),
            argocd: argocd(r.kind, obj),
            kubectl_wait: kubectl_wait(cp, ns, r.kind, r.object),
        };
        if got != expected(r) {
            wrong.push(format!(
                "{} {} ({}):\n  want {:?}\n  got  {:?} (kstatus: {})",
                r.kind,
                r.object,
                r.situation,
                expected(r),
                got,
                verdict.message
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{phase:?}: rows that read otherwise than the table:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_health_table_reads_as_documented() {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let client = cp.client();
    let ns = cp.namespace("health").await;
    let _envs = crate::health_setup::create_all(&client, &ns).await;

    check_phase(cp, &client, &ns, Phase::Unseen).await;

    let mut operator = Operator::start(cp.kubeconfig(), &ns, &[]);
    check_phase(cp, &client, &ns, Phase::Running).await;

    // The operator stops; then the specs change: nothing may read healthy
    // (nor failed) for a spec no one has looked at.
    operator.kill();
    let params = PatchParams::default();
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), &ns);
    orders
        .patch(
            "order-updated",
            &params,
            &Patch::Merge(json!({"spec": {"deliveryDate": "2025-03-01"}})),
        )
        .await
        .expect("patch order");
    let conns: Api<D365Connection> = Api::namespaced(client.clone(), &ns);
    conns
        .patch(
            "conn-ok",
            &params,
            &Patch::Merge(json!({"spec": {"maxRequestsPerSecond": 400}})),
        )
        .await
        .expect("patch connection");
    check_phase(cp, &client, &ns, Phase::SpecChanged).await;
}

/// No situation reads InProgress forever: a connection whose token
/// endpoint is down, used by no order, turns Current by itself once the
/// endpoint is back, without any event on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_connection_turns_current_by_itself() {
    let cp = testkit::control_plane().await;
    cp.apply_crds(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .await;
    let client = cp.client();
    let ns = cp.namespace("health-back").await;
    // A free port, closed until the emulator takes it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    crate::support::put_secret(&client, &ns).await;
    let conn = D365Connection::test(&format!("http://{addr}")).named("late");
    crate::support::create_connection(&client, &ns, conn).await;
    let _op = Operator::start(cp.kubeconfig(), &ns, &[]);

    let conns: Api<D365Connection> = Api::namespaced(client.clone(), &ns);
    let reads = |want: &'static str| {
        let conns = conns.clone();
        async move {
            let c = conns.get("late").await.ok()?;
            let v = serde_json::to_value(&c).ok()?;
            (health::conditions(&v) == want).then_some(v)
        }
    };
    let down = "Ready=False, Reconciling=True (Unavailable)";
    let v = testkit::wait_for(Duration::from_secs(30), || reads(down))
        .await
        .expect("the connection reads Unavailable while nothing listens");
    assert_eq!(kstatus(&[v])[0].status, "InProgress");

    let config = d365_emulator::Config {
        listen: addr,
        ..d365_emulator::Config::default()
    };
    let _emu = d365_emulator::Emulator::start(config)
        .await
        .expect("emulator on the port");
    let up = "Ready=True (Authenticated)";
    let v = testkit::wait_for(Duration::from_secs(40), || reads(up))
        .await
        .expect("the connection is checked again without an event");
    assert_eq!(kstatus(&[v])[0].status, "Current");
}
