//! Orders by the connection they use, fed by the order watch, so a changed
//! connection or Secret requeues its orders without scanning every order
//! (O(orders of that connection), not O(all orders)).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::api::SalesOrderStatus;
use crate::locks::lock;

/// (namespace, name) of an object.
type Id = (String, String);

/// The index; shared by the event handler and the reconciles.
#[derive(Debug, Default)]
pub struct ByConnection {
    state: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// (namespace, connection) -> names of its orders.
    orders: HashMap<Id, BTreeSet<String>>,
    /// (namespace, order) -> its connection, to move or drop it.
    connection_of: HashMap<Id, String>,
    /// Orders seen since a re-list began; replaces the index at InitDone,
    /// so orders deleted during a watch gap leave it.
    relisting: Option<HashMap<Id, String>>,
}

impl ByConnection {
    /// Follows one event of the order watch.
    pub fn apply(&self, event: &Event<SalesOrderStatus>) {
        let mut index = lock(&self.state);
        match event {
            Event::Apply(order) => index.upsert(id(order), &order.spec.connection_ref.name),
            Event::Delete(order) => index.remove(&id(order)),
            Event::Init => index.relisting = Some(HashMap::new()),
            Event::InitApply(order) => {
                let connection = order.spec.connection_ref.name.clone();
                index
                    .relisting
                    .get_or_insert_default()
                    .insert(id(order), connection);
            }
            Event::InitDone => {
                let listed = index.relisting.take().unwrap_or_default();
                *index = Index::default();
                for (order, connection) in listed {
                    index.upsert(order, &connection);
                }
            }
        }
    }

    /// The orders of connection `namespace/connection`.
    pub fn orders_of(&self, namespace: &str, connection: &str) -> Vec<ObjectRef<SalesOrderStatus>> {
        let index = lock(&self.state);
        let key = (namespace.to_owned(), connection.to_owned());
        index.orders.get(&key).map_or_else(Vec::new, |names| {
            names
                .iter()
                .map(|n| ObjectRef::new(n).within(namespace))
                .collect()
        })
    }

    /// Whether any order uses connection `namespace/connection`.
    pub fn is_used(&self, namespace: &str, connection: &str) -> bool {
        let key = (namespace.to_owned(), connection.to_owned());
        lock(&self.state).orders.contains_key(&key)
    }
}

impl Index {
    fn upsert(&mut self, order: Id, connection: &str) {
        match self.connection_of.get(&order) {
            Some(old) if old == connection => return,
            Some(_) => self.remove(&order),
            None => {}
        }
        let (namespace, name) = order.clone();
        self.orders
            .entry((namespace, connection.to_owned()))
            .or_default()
            .insert(name);
        self.connection_of.insert(order, connection.to_owned());
    }

    fn remove(&mut self, order: &Id) {
        let Some(connection) = self.connection_of.remove(order) else {
            return;
        };
        let key = (order.0.clone(), connection);
        if let Some(names) = self.orders.get_mut(&key) {
            names.remove(&order.1);
            if names.is_empty() {
                self.orders.remove(&key);
            }
        }
    }
}

fn id(order: &SalesOrderStatus) -> Id {
    (order.namespace().unwrap_or_default(), order.name_any())
}

#[cfg(test)]
#[path = "by_connection_tests.rs"]
mod tests;
