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

use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::api::SalesOrderStatus;
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

#[cfg(test)]
#[path = "relist_tests.rs"]
mod tests;
