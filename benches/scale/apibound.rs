//! The API server's bound, measured in the same bench run: a plain kube
//! client does what the operator must do per order at the least, one
//! status write and one Event, for N orders at the operator's reconcile
//! concurrency, in a namespace of its own no operator watches.
//!
//! The status written is the one the operator writes for an updated order
//! (`reconcile::next_status`: observed entity, last update, Ready): what
//! the API server decodes, validates against the CRD's schema and stores
//! grows with it, so a smaller stand-in would set a floor the operator
//! cannot reach. A one-condition status is measured too, for comparison
//! with earlier runs (`Bounds::api_server_minimal`).

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PostParams};
use kube::{Client, ResourceExt};
use sales_order_operator::api::{LastUpdate, ObservedOrder, SalesOrderStatus};
use sales_order_operator::controller::{status_patch_params, status_replacement};
use sales_order_operator::reconcile::{Outcome, next_status};
use serde_json::json;

use crate::{procfs, support};

/// Namespaces with N orders, and bounds measured, kept for the bench run.
#[derive(Default)]
pub struct ApiBounds {
    namespaces: HashMap<usize, String>,
    measured: HashMap<(usize, u16), ApiBound>,
    passes: u64,
}

/// Seconds for N status writes + N Events, by the status written.
#[derive(Clone, Copy, Debug)]
pub struct ApiBound {
    /// The operator's status for an updated order.
    pub operator_status: f64,
    /// A status of one Ready condition.
    pub minimal: f64,
    /// etcd + kube-apiserver CPU per order in the operator-status pass,
    /// in ms: what the writes alone cost, however fast the machine is.
    pub control_plane_ms: Option<f64>,
}

/// The status a pass writes.
#[derive(Clone, Copy)]
enum Payload {
    OperatorStatus,
    Minimal,
}

impl ApiBounds {
    /// Seconds for N status writes + N Events at `concurrency`.
    pub async fn get(&mut self, n: usize, concurrency: u16) -> ApiBound {
        if let Some(bound) = self.measured.get(&(n, concurrency)) {
            return *bound;
        }
        let cp = super::run::plane().await;
        let client = cp.client();
        let ns = match self.namespaces.get(&n) {
            Some(ns) => ns.clone(),
            None => {
                let ns = cp.namespace(&format!("bench-api-{n}")).await;
                let api: Api<SalesOrderStatus> = Api::namespaced(client.clone(), &ns);
                support::create_orders_concurrently(&api, (1..=n).map(SalesOrderStatus::test), 32)
                    .await;
                self.namespaces.insert(n, ns.clone());
                ns
            }
        };
        let mut pass = |payload| {
            self.passes += 1;
            writes(&client, &ns, n, concurrency, self.passes, payload)
        };
        let minimal = pass(Payload::Minimal).await;
        let cpu = control_plane_cpu(cp);
        let operator_status = pass(Payload::OperatorStatus).await;
        let bound = ApiBound {
            minimal,
            operator_status,
            control_plane_ms: per_order_ms(cpu, control_plane_cpu(cp), n),
        };
        self.measured.insert((n, concurrency), bound);
        bound
    }
}

/// User + system CPU seconds of etcd and kube-apiserver so far; `None`
/// if either is gone (restarted by a test, not in a bench).
pub fn control_plane_cpu(cp: &testkit::ControlPlane) -> Option<f64> {
    cp.pids()
        .iter()
        .map(|pid| procfs::cpu_time(*pid).map(|t| t.as_secs_f64()))
        .sum()
}

/// CPU between two readings per order, in ms.
pub fn per_order_ms(before: Option<f64>, after: Option<f64>, n: usize) -> Option<f64> {
    Some((after? - before?) * 1e3 / n.max(1) as f64)
}

/// The status write of `payload` for order `i` on `pass`: a change on
/// every pass, as the operator's writes are; the operator's status goes
/// as the operator sends it, a JSON Patch replacing the status.
fn status(payload: Payload, i: usize, pass: u64) -> Patch<serde_json::Value> {
    let now = jiff::Timestamp::now();
    match payload {
        Payload::Minimal => {
            Patch::Merge(json!({"status": {"observedGeneration": 1, "conditions": [{
                "type": "Ready", "status": "True", "reason": "Updated",
                "message": format!("bench pass {pass}"), "observedGeneration": 1,
                "lastTransitionTime": now.to_string(),
            }]}}))
        }
        Payload::OperatorStatus => {
            let (from, to) = (etag(i, pass), etag(i, pass + 1));
            let outcome = Outcome::Updated {
                observed: ObservedOrder {
                    sales_status: Some("Delivered".into()),
                    delivery_date: None,
                    etag: Some(to.clone()),
                },
                update: LastUpdate {
                    time: now.to_string(),
                    from_etag: from,
                    to_etag: Some(to),
                    attempts: 1,
                    fields: vec!["SalesOrderStatus".into()],
                    generation: Some(1),
                    resends: 0,
                },
            };
            match status_replacement(&next_status(None, Some(1), &outcome, Time(now))) {
                Ok(Patch::Json(ops)) => Patch::Json(ops),
                other => panic!("the operator's status write: {other:?}"),
            }
        }
    }
}

/// An ETag of the emulator's length for order `i` at `version`.
fn etag(i: usize, version: u64) -> String {
    format!("W/\"JzEwNjY1LDU2Mz{i:07}{version:06}\"")
}

/// One status write and one Event for each of the `n` orders in `ns`,
/// `concurrency` orders at a time; `pass` makes every status a change.
async fn writes(
    client: &Client,
    ns: &str,
    n: usize,
    concurrency: u16,
    pass: u64,
    payload: Payload,
) -> f64 {
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = status_patch_params();
    let started = Instant::now();
    futures::stream::iter(1..=n)
        .for_each_concurrent(usize::from(concurrency), |i| {
            let (orders, events, params) = (&orders, &events, &params);
            async move {
                let name = SalesOrderStatus::test(i).name_any();
                let status = status(payload, i, pass);
                orders
                    .patch_status(&name, params, &status)
                    .await
                    .expect("status write");
                events
                    .create(&PostParams::default(), &event(ns, &name, i, pass))
                    .await
                    .expect("event");
            }
        })
        .await;
    started.elapsed().as_secs_f64()
}

/// An Event as the operator's recorder writes one for an updated order.
fn event(ns: &str, name: &str, i: usize, pass: u64) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.bench-{pass}")),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some("Reconcile".into()),
        reason: Some("Updated".into()),
        note: Some(format!(
            "PATCHed SalesOrderStatus (If-Match {}, new ETag {})",
            etag(i, pass),
            etag(i, pass + 1)
        )),
        type_: Some("Normal".into()),
        reporting_controller: Some("bench.salesops.io".into()),
        reporting_instance: Some("bench".into()),
        regarding: Some(ObjectReference {
            api_version: Some("d365.salesops.io/v1alpha1".into()),
            kind: Some("SalesOrderStatus".into()),
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
