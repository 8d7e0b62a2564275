//! A list's orders reach the controller only once the store holds them.

use std::sync::{Arc, Mutex};

use futures::channel::mpsc;
use futures::{StreamExt, stream};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};

use super::ListHold;
use crate::api::SalesOrderStatus;

fn order(n: usize) -> SalesOrderStatus {
    let mut order = SalesOrderStatus::test(n);
    order.metadata.namespace = Some("ns".into());
    order.metadata.generation = Some(1);
    order
}

/// Runs `events` through the operator's trigger chain; returns, for each
/// order triggered directly or woken, whether the store held it then.
async fn run(events: Vec<Event<SalesOrderStatus>>) -> Vec<(String, bool)> {
    let (store, writer) = reflector::store::<SalesOrderStatus>();
    let (wake_tx, mut wake_rx) = mpsc::unbounded();
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let record = |store: &Store<SalesOrderStatus>, r: ObjectRef<SalesOrderStatus>| {
        (r.name.clone(), store.get(&r).is_some())
    };
    let woken = {
        let (store, seen) = (store.clone(), seen.clone());
        move || {
            while let Ok(r) = wake_rx.try_recv() {
                seen.lock().unwrap().push(record(&store, r));
            }
        }
    };
    let woken = Arc::new(Mutex::new(woken));
    let on_event = {
        let woken = woken.clone();
        move |_: &Event<SalesOrderStatus>| (woken.lock().unwrap())()
    };
    let events = stream::iter(events.into_iter().map(Ok::<_, watcher::Error>));
    let mut triggers = Box::pin(super::triggers(
        events,
        writer,
        ListHold::new(wake_tx),
        on_event,
    ));
    while let Some(next) = triggers.next().await {
        let order = next.expect("no watch errors here");
        let r = ObjectRef::from_obj(&order);
        seen.lock().unwrap().push(record(&store, r));
    }
    (woken.lock().unwrap())();
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn orders_of_a_relist_are_reconciled_once_the_store_holds_them() {
    let seen = run(vec![
        // The first list: orders 1 and 2.
        Event::Init,
        Event::InitApply(order(1)),
        Event::InitApply(order(2)),
        Event::InitDone,
        // The watch expired; the re-list brings order 3, new.
        Event::Init,
        Event::InitApply(order(1)),
        Event::InitApply(order(2)),
        Event::InitApply(order(3)),
        Event::InitDone,
        // After it, a plain watch event passes at once.
        Event::Apply(order(4)),
    ])
    .await;
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "so-2025-0001",
            "so-2025-0002",
            "so-2025-0003",
            "so-2025-0004"
        ],
        "each new order once; the re-listed ones already seen not again"
    );
    for (name, in_store) in &seen {
        assert!(
            in_store,
            "{name} reached the controller before the store held it"
        );
    }
}
