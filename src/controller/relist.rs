//! Orders a list brings in are reconciled only once the list is complete.
//!
//! The reflector's store takes a list's objects all at once, at its end
//! (`InitDone`), so an order first seen in a re-list (after the watch
//! expired, say) is not in the store while the list runs. kube-runtime
//! holds reconciles back only until the *first* list ends; an order that
//! arrived in a later one was reconciled at once, not found in the store,
//! dropped, and, its generation already seen, never triggered again: it
//! stayed without status until its spec changed (found with two shards at
//! 10,000 orders, where a watch expired during the mass create). Here such
//! an order is held as a reference and woken once its list is in the store.

use std::collections::hash_map::DefaultHasher;
use std::future::ready as done;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, TryStreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, predicates};

use crate::api::{RECONCILE_REQUESTED_AT, SalesOrderStatus};
use crate::locks::lock;

/// Shared by the stage after the reflector (which sees list boundaries)
/// and the stage after the trigger filter (which sees what to reconcile).
#[derive(Clone)]
pub struct ListHold {
    state: Arc<Mutex<Held>>,
    wake: UnboundedSender<ObjectRef<SalesOrderStatus>>,
}

#[derive(Default)]
struct Held {
    listing: bool,
    orders: Vec<ObjectRef<SalesOrderStatus>>,
}

impl ListHold {
    /// Held orders are woken through `wake` (the controller's
    /// `reconcile_on` channel).
    pub fn new(wake: UnboundedSender<ObjectRef<SalesOrderStatus>>) -> Self {
        Self {
            state: Arc::default(),
            wake,
        }
    }

    /// Follows list boundaries; call after the reflector applied `event`,
    /// so at `InitDone` the held orders are in the store.
    pub fn follow(&self, event: &Event<SalesOrderStatus>) {
        let held = {
            let mut state = lock(&self.state);
            match event {
                Event::Init => {
                    state.listing = true;
                    return;
                }
                Event::InitDone => {
                    state.listing = false;
                    std::mem::take(&mut state.orders)
                }
                _ => return,
            }
        };
        for order in held {
            // Closed only when the controller is gone: nothing to wake.
            let _ = self.wake.unbounded_send(order);
        }
    }

    /// An order to reconcile now, or none while its list is incomplete
    /// (then held, and woken at the list's end).
    pub fn pass(&self, order: SalesOrderStatus) -> Option<SalesOrderStatus> {
        let mut state = lock(&self.state);
        if !state.listing {
            return Some(order);
        }
        state.orders.push(ObjectRef::from_obj(&order));
        None
    }
}

/// The reconcile triggers of an order event stream: into the store, then
/// the orders whose trigger hash changed, each once its list is complete.
/// `on_event` sees every event after the store took it.
pub fn triggers<S>(
    events: S,
    writer: Writer<SalesOrderStatus>,
    hold: ListHold,
    mut on_event: impl FnMut(&Event<SalesOrderStatus>) + Send + 'static,
) -> impl Stream<Item = Result<SalesOrderStatus, watcher::Error>> + Send + 'static
where
    S: Stream<Item = Result<Event<SalesOrderStatus>, watcher::Error>> + Send + 'static,
{
    let boundaries = hold.clone();
    events
        .reflect(writer)
        .inspect_ok(move |event| {
            on_event(event);
            boundaries.follow(event);
        })
        .touched_objects()
        .predicate_filter(trigger_hash, Default::default())
        .try_filter_map(move |order| done(Ok(hold.pass(order))))
}

/// Reconcile on spec changes (generation) and on a new value of the
/// reconcile-requested-at annotation; status writes do not retrigger.
fn trigger_hash(order: &SalesOrderStatus) -> Option<u64> {
    let mut h = DefaultHasher::new();
    predicates::generation(order).hash(&mut h);
    order.annotations().get(RECONCILE_REQUESTED_AT).hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
#[path = "relist_tests.rs"]
mod tests;
