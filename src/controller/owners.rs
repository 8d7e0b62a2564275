//! Who writes each D365 order, across every controller of the process: an
//! index of claims by order key, fed by the order watches, so a reconcile
//! looks at the k objects naming its order (usually one) instead of
//! scanning every order. Connections are looked up at decision time, so a
//! changed connection URL needs no re-indexing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use tokio::sync::watch;

use super::duplicates::{Claim, Environment, OrderKey, environment, order_key, owner_other_than};
use crate::api::{D365Connection, SalesOrderStatus};
use crate::locks::lock;
use crate::maps::Names;

/// Shared by every controller of the process (one per watched namespace).
pub struct Owners {
    state: Mutex<State>,
    /// Controllers expected to join; decisions wait until each has listed.
    controllers: usize,
    all_listed: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    claims: HashMap<OrderKey, Vec<Entry>>,
    /// (namespace, name) -> the key it is indexed under (the same strings
    /// as the claim's and the key's, shared).
    keys: HashMap<(Arc<str>, Arc<str>), OrderKey>,
    /// One copy of each namespace, connection and company name, which
    /// thousands of claims repeat (issue 12: memory per order).
    names: Names,
    feeds: Vec<FeedState>,
}

struct Entry {
    claim: Claim,
    /// The owner it last yielded to: it must hear when that changes.
    yielded_to: Option<String>,
}

/// One controller: what it watches, its connections, how to wake its orders.
struct FeedState {
    scope: Option<String>,
    connections: Store<D365Connection>,
    wake: UnboundedSender<ObjectRef<SalesOrderStatus>>,
    listed: bool,
}

impl FeedState {
    fn watches(&self, namespace: &str) -> bool {
        self.scope.as_deref().is_none_or(|s| s == namespace)
    }
}

impl Default for Owners {
    fn default() -> Self {
        Self::new(1)
    }
}

impl std::fmt::Debug for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owners")
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

impl Owners {
    /// An index for `controllers` controllers.
    pub fn new(controllers: usize) -> Self {
        Self {
            state: Mutex::default(),
            controllers,
            all_listed: watch::Sender::new(false),
        }
    }

    /// Adds a controller watching `scope` (all namespaces when `None`);
    /// its orders are woken through `wake`. A wake reaches only the
    /// controllers that watch the order's namespace: kube-runtime drops a
    /// reconcile request for an object not in its store, as an error.
    pub fn join(
        self: &Arc<Self>,
        scope: Option<String>,
        connections: Store<D365Connection>,
        wake: UnboundedSender<ObjectRef<SalesOrderStatus>>,
    ) -> Feed {
        let mut state = lock(&self.state);
        state.feeds.push(FeedState {
            scope,
            connections,
            wake,
            listed: false,
        });
        Feed {
            owners: self.clone(),
            id: state.feeds.len() - 1,
        }
    }
}

/// One controller's handle on the shared index.
#[derive(Clone)]
pub struct Feed {
    owners: Arc<Owners>,
    id: usize,
}

impl Feed {
    /// Follows one event of this controller's order watch. `orders` is its
    /// store, already updated: after a re-list, claims in scope that it no
    /// longer holds are dropped (their Delete was missed).
    pub fn apply(&self, event: &Event<SalesOrderStatus>, orders: &Store<SalesOrderStatus>) {
        let mut state = lock(&self.owners.state);
        let woken = match event {
            Event::Apply(order) | Event::InitApply(order) => {
                state.upsert(Claim::of(order), order_key(&order.spec))
            }
            Event::Delete(order) => state.remove(&Claim::of(order)),
            Event::InitDone => state.drop_unlisted(self.id, orders),
            Event::Init => Vec::new(),
        };
        state.wake(&woken);
    }

    /// This controller has listed its connections and orders; decisions
    /// start once every controller has.
    pub fn listed(&self) {
        let mut state = lock(&self.owners.state);
        if let Some(feed) = state.feeds.get_mut(self.id) {
            feed.listed = true;
        }
        let all =
            state.feeds.len() >= self.owners.controllers && state.feeds.iter().all(|f| f.listed);
        if all {
            self.owners.all_listed.send_replace(true);
        }
    }

    /// The object (`namespace/name`) that writes `order`'s D365 order when
    /// it is not `order`. Waits until every controller has listed, so no
    /// claim is missed at startup. An owner wakes the claims that must now
    /// yield to it, or that yielded to it and no longer need to.
    pub async fn owner_of(&self, order: &SalesOrderStatus) -> Option<String> {
        // An error means the index is gone: the process is stopping.
        let _ = self
            .owners
            .all_listed
            .subscribe()
            .wait_for(|all| *all)
            .await;
        let me = Claim::of(order);
        let mut state = lock(&self.owners.state);
        let key = order_key(&order.spec);
        let (owner, woken) = state.decide(&me, &key);
        state.wake(&woken);
        owner
    }
}

impl State {
    /// Indexes `claim` under `key`; returns the claims to wake.
    fn upsert(&mut self, mut claim: Claim, mut key: OrderKey) -> Vec<Claim> {
        claim.namespace = self.names.intern(&claim.namespace);
        claim.connection = self.names.intern(&claim.connection);
        key.0 = self.names.intern(&key.0);
        let id = (claim.namespace.clone(), claim.name.clone());
        let mut woken = Vec::new();
        if let Some(old) = self.keys.insert(id, key.clone())
            && old != key
        {
            woken = self.take(&old, &claim);
        }
        let entries = self.claims.entry(key).or_default();
        match entries.iter_mut().find(|e| e.claim.is(&claim)) {
            Some(entry) if entry.claim == claim => {}
            Some(entry) => {
                entry.claim = claim;
                woken.extend(yielded(entries));
            }
            None => {
                // Usually the only claim on its order: a pushed-to empty
                // Vec would hold room for four (~500 bytes per order).
                entries.reserve_exact(1);
                entries.push(Entry {
                    claim,
                    yielded_to: None,
                });
            }
        }
        woken
    }

    /// Forgets a deleted object (unless the name now holds a newer one);
    /// returns the claims to wake.
    fn remove(&mut self, claim: &Claim) -> Vec<Claim> {
        let id = (claim.namespace.clone(), claim.name.clone());
        let Some(key) = self.keys.get(&id).cloned() else {
            return Vec::new();
        };
        let same_object = self.claims.get(&key).is_some_and(|entries| {
            entries
                .iter()
                .any(|e| e.claim.is(claim) && (e.claim.uid == claim.uid || claim.uid.is_none()))
        });
        if !same_object {
            return Vec::new();
        }
        self.keys.remove(&id);
        self.take(&key, claim)
    }

    /// Drops `claim` from `key`'s entries; returns those that yielded,
    /// who may now own the order.
    fn take(&mut self, key: &OrderKey, claim: &Claim) -> Vec<Claim> {
        let Some(entries) = self.claims.get_mut(key) else {
            return Vec::new();
        };
        entries.retain(|e| !e.claim.is(claim));
        let woken = yielded(entries);
        if entries.is_empty() {
            self.claims.remove(key);
        }
        woken
    }

    /// After feed `id` re-listed: drops its claims that `orders` lacks.
    fn drop_unlisted(&mut self, id: usize, orders: &Store<SalesOrderStatus>) -> Vec<Claim> {
        let Some(feed) = self.feeds.get(id) else {
            return Vec::new();
        };
        let gone: Vec<Claim> = self
            .claims
            .values()
            .flatten()
            .map(|e| &e.claim)
            .filter(|c| feed.watches(&c.namespace))
            .filter(|c| {
                orders
                    .get(&ObjectRef::new(&c.name).within(&c.namespace))
                    .is_none()
            })
            .cloned()
            .collect();
        let woken = gone.iter().flat_map(|c| self.remove(c)).collect();
        // Names no claim holds any more (a deleted namespace) leave too.
        self.names.forget_unused();
        woken
    }

    /// Decides `me`'s owner and records it; returns (the owner when not
    /// `me`, the claims to wake).
    fn decide(&mut self, me: &Claim, key: &OrderKey) -> (Option<String>, Vec<Claim>) {
        let Some(entries) = self.claims.get(key) else {
            return (None, Vec::new());
        };
        let others: Vec<Claim> = entries.iter().map(|e| e.claim.clone()).collect();
        let env = |c: &Claim| self.environment(c);
        let owner = owner_other_than(me, &others, env).map(ToString::to_string);
        let mine = env(me);
        let me_name = me.to_string();
        // In my environment and not yet yielding to me, or yielding to me
        // from another environment (my connection moved).
        let must_hear: Vec<bool> = entries
            .iter()
            .map(|e| {
                let to_me = e.yielded_to.as_deref() == Some(me_name.as_str());
                me.outranks(&e.claim) && (env(&e.claim) == mine) != to_me
            })
            .collect();
        let Some(entries) = self.claims.get_mut(key) else {
            return (owner, Vec::new());
        };
        if let Some(entry) = entries.iter_mut().find(|e| e.claim.is(me)) {
            entry.yielded_to.clone_from(&owner);
        }
        let woken = match owner {
            Some(_) => Vec::new(),
            None => entries
                .iter()
                .zip(must_hear)
                .filter(|(_, hear)| *hear)
                .map(|(e, _)| e.claim.clone())
                .collect(),
        };
        (owner, woken)
    }

    /// The environment of `claim`'s connection, from the controller that
    /// watches its namespace.
    fn environment(&self, claim: &Claim) -> Environment {
        let conn = self
            .feeds
            .iter()
            .filter(|f| f.watches(&claim.namespace))
            .find_map(|f| {
                f.connections
                    .get(&ObjectRef::new(&claim.connection).within(&claim.namespace))
            });
        environment(conn.as_deref(), &claim.namespace, &claim.connection)
    }

    /// Requeues `claims` in the controllers that watch them.
    fn wake(&self, claims: &[Claim]) {
        for claim in claims {
            let oref = ObjectRef::new(&claim.name).within(&claim.namespace);
            let feeds = self.feeds.iter().filter(|f| !f.wake.is_closed());
            for feed in feeds.filter(|f| f.watches(&claim.namespace)) {
                let _ = feed.wake.unbounded_send(oref.clone());
            }
        }
    }
}

/// The claims that yielded to an owner.
fn yielded(entries: &[Entry]) -> Vec<Claim> {
    entries
        .iter()
        .filter(|e| e.yielded_to.is_some())
        .map(|e| e.claim.clone())
        .collect()
}

#[cfg(test)]
#[path = "owners_tests.rs"]
mod tests;
