//! Which series of the objects gauge each order counts in. Kept per
//! namespace, with the namespace and connection strings shared between
//! the index and the series' labels: at 10,000 orders the index is most of
//! the gauge's memory (issue 12), and a controller asks it for the orders
//! of its own namespaces when it prunes.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

use crate::maps::{Names, shrink_when_sparse};

/// The objects gauge is labelled by the order's own namespace and
/// connection, so alerts group by where the orders live (not by where the
/// operator runs).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ObjectLabels {
    pub reason: &'static str,
    pub namespace: Arc<str>,
    pub connection: Arc<str>,
}

#[derive(Debug, Default)]
pub(super) struct ObjectIndex {
    /// namespace -> order name -> its series.
    by_namespace: HashMap<Arc<str>, HashMap<Box<str>, ObjectLabels>>,
    /// One copy of each connection name.
    connections: Names,
}

impl ObjectIndex {
    /// Records `namespace/name`'s series; returns (the one it leaves, the
    /// one it joins).
    pub fn set(
        &mut self,
        (namespace, name): (&str, &str),
        connection: &str,
        reason: &'static str,
    ) -> (Option<ObjectLabels>, ObjectLabels) {
        let namespace: Arc<str> = match self.by_namespace.get_key_value(namespace) {
            Some((known, _)) => known.clone(),
            None => namespace.into(),
        };
        let connection = self.connections.intern(connection);
        let names = self.by_namespace.entry(namespace.clone()).or_default();
        let labels = ObjectLabels {
            reason,
            namespace,
            connection,
        };
        let previous = names.insert(name.into(), labels.clone());
        (previous, labels)
    }

    /// Forgets `namespace/name`; returns the series it leaves.
    pub fn remove(&mut self, namespace: &str, name: &str) -> Option<ObjectLabels> {
        let names = self.by_namespace.get_mut(namespace)?;
        let previous = names.remove(name);
        if names.is_empty() {
            self.by_namespace.remove(namespace);
            self.connections.forget_unused();
        } else if previous.is_some() {
            shrink_when_sparse(names);
        }
        previous
    }

    /// (namespace, name) of every order counted in `namespace`, or in
    /// every namespace when `None`.
    pub fn names_in(&self, namespace: Option<&str>) -> Vec<(String, String)> {
        self.by_namespace
            .iter()
            .filter(|(ns, _)| namespace.is_none_or(|scope| scope == &***ns))
            .flat_map(|(ns, names)| names.keys().map(|name| (ns.to_string(), name.to_string())))
            .collect()
    }
}
