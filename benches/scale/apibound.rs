//! The API server's bound, measured in the same bench run: a plain kube
//! client does what the operator must do per order at the least, one
//! status write and one Event, for N orders at the operator's reconcile
//! concurrency, in a namespace of its own no operator watches.

use std::collections::HashMap;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use sales_order_operator::api::SalesOrderStatus;
use serde_json::json;

use crate::support;

/// Namespaces with N orders, and bounds measured, kept for the bench run.
#[derive(Default)]
pub struct ApiBounds {
    namespaces: HashMap<usize, String>,
    measured: HashMap<(usize, u16), f64>,
    passes: u64,
}

impl ApiBounds {
    /// Seconds for N status writes + N Events at `concurrency`.
    pub async fn get(&mut self, n: usize, concurrency: u16) -> f64 {
        if let Some(s) = self.measured.get(&(n, concurrency)) {
            return *s;
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
        self.passes += 1;
        let seconds = writes(&client, &ns, n, concurrency, self.passes).await;
        self.measured.insert((n, concurrency), seconds);
        seconds
    }
}

/// One status write and one Event for each of the `n` orders in `ns`,
/// `concurrency` orders at a time; `pass` makes every status a change.
async fn writes(client: &Client, ns: &str, n: usize, concurrency: u16, pass: u64) -> f64 {
    let orders: Api<SalesOrderStatus> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    futures::stream::iter(1..=n)
        .for_each_concurrent(usize::from(concurrency), |i| {
            let (orders, events) = (&orders, &events);
            async move {
                let name = SalesOrderStatus::test(i).name_any();
                let status = json!({"status": {"observedGeneration": 1, "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Updated",
                    "message": format!("bench pass {pass}"), "observedGeneration": 1,
                    "lastTransitionTime": jiff::Timestamp::now().to_string(),
                }]}});
                orders
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .expect("status write");
                events
                    .create(&PostParams::default(), &event(ns, &name, pass))
                    .await
                    .expect("event");
            }
        })
        .await;
    started.elapsed().as_secs_f64()
}

/// An Event as the operator's recorder writes one.
fn event(ns: &str, name: &str, pass: u64) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.bench-{pass}")),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some("Reconcile".into()),
        reason: Some("Updated".into()),
        note: Some(format!("bench pass {pass}")),
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
