//! Orders by the connection they use, fed by the order watch, so a changed
//! connection or Secret requeues its orders without scanning every order
//! (O(orders of that connection), not O(all orders)).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::api::SalesOrderStatus;
use crate::locks::lock;
use crate::maps::{Names, shrink_when_sparse};

/// A namespace, connection or order name, shared: each order's name is
/// kept once for both maps, and namespaces and connections once in all
/// (issue 12: memory per order).
type Name = Arc<str>;

/// The index; shared by the event handler and the reconciles.
#[derive(Debug, Default)]
pub struct ByConnection {
    state: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// namespace -> connection -> names of its orders.
    orders: HashMap<Name, HashMap<Name, BTreeSet<Name>>>,
    /// namespace -> order -> its connection, to move or drop it.
    connection_of: HashMap<Name, HashMap<Name, Name>>,
    /// Orders seen since a re-list began, (namespace, name, connection);
    /// replaces the index at InitDone, so orders deleted during a watch
    /// gap leave it.
    relisting: Option<Vec<(Name, Name, Name)>>,
    /// Interned namespaces and connections.
    names: Names,
}

impl ByConnection {
    /// Follows one event of the order watch.
    pub fn apply(&self, event: &Event<SalesOrderStatus>) {
        let mut index = lock(&self.state);
        match event {
            Event::Apply(order) => {
                let (namespace, name, connection) = index.parts(order);
                index.upsert(namespace, name, connection);
            }
            Event::Delete(order) => {
                let namespace = order.namespace().unwrap_or_default();
                index.remove(&namespace, &order.name_any());
            }
            Event::Init => index.relisting = Some(Vec::new()),
            Event::InitApply(order) => {
                let parts = index.parts(order);
                index.relisting.get_or_insert_default().push(parts);
            }
            Event::InitDone => {
                let listed = index.relisting.take().unwrap_or_default();
                index.orders.clear();
                index.connection_of.clear();
                for (namespace, name, connection) in listed {
                    index.upsert(namespace, name, connection);
                }
                index.names.forget_unused();
            }
        }
    }

    /// The orders of connection `namespace/connection`.
    pub fn orders_of(&self, namespace: &str, connection: &str) -> Vec<ObjectRef<SalesOrderStatus>> {
        let index = lock(&self.state);
        let names = index.orders.get(namespace).and_then(|c| c.get(connection));
        names.map_or_else(Vec::new, |names| {
            names
                .iter()
                .map(|n| ObjectRef::new(n).within(namespace))
                .collect()
        })
    }

    /// Whether any order uses connection `namespace/connection`.
    pub fn is_used(&self, namespace: &str, connection: &str) -> bool {
        let index = lock(&self.state);
        index
            .orders
            .get(namespace)
            .is_some_and(|c| c.contains_key(connection))
    }
}

impl Index {
    /// (namespace, name, connection) of `order`, namespace and connection
    /// interned.
    fn parts(&mut self, order: &SalesOrderStatus) -> (Name, Name, Name) {
        let namespace = self.names.intern(&order.namespace().unwrap_or_default());
        let connection = self.names.intern(&order.spec.connection_ref.name);
        (namespace, order.name_any().into(), connection)
    }

    fn upsert(&mut self, namespace: Name, name: Name, connection: Name) {
        let known = self
            .connection_of
            .get(&namespace)
            .and_then(|o| o.get(&name));
        match known {
            Some(old) if *old == connection => return,
            Some(_) => self.remove(&namespace, &name),
            None => {}
        }
        self.orders
            .entry(namespace.clone())
            .or_default()
            .entry(connection.clone())
            .or_default()
            .insert(name.clone());
        self.connection_of
            .entry(namespace)
            .or_default()
            .insert(name, connection);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        let Some(of_namespace) = self.connection_of.get_mut(namespace) else {
            return;
        };
        let Some(connection) = of_namespace.remove(name) else {
            return;
        };
        shrink_when_sparse(of_namespace);
        if of_namespace.is_empty() {
            self.connection_of.remove(namespace);
        }
        let Some(by_connection) = self.orders.get_mut(namespace) else {
            return;
        };
        if let Some(names) = by_connection.get_mut(&connection) {
            names.remove(name);
            if names.is_empty() {
                by_connection.remove(&connection);
            }
        }
        if by_connection.is_empty() {
            self.orders.remove(namespace);
        }
    }
}

#[cfg(test)]
#[path = "by_connection_tests.rs"]
mod tests;
