//! The index driven by watch events as the controllers see them: owners
//! across namespaces and connections, who is woken when, re-lists, and the
//! startup gate.

use crate::fixtures::Placed;
use futures::FutureExt;
use futures::channel::mpsc::{self, UnboundedReceiver};
use kube::runtime::reflector::{self, store::Writer};

use super::*;
use crate::api::SalesStatus;

/// One controller as `controller::run` wires it: stores, a feed, a wake
/// channel.
struct Controller {
    feed: Feed,
    orders: Store<SalesOrderStatus>,
    order_writer: Writer<SalesOrderStatus>,
    connection_writer: Writer<D365Connection>,
    woken: UnboundedReceiver<ObjectRef<SalesOrderStatus>>,
}

impl Controller {
    fn join(owners: &Arc<Owners>, scope: Option<&str>) -> Self {
        let (orders, order_writer) = reflector::store();
        let (connections, connection_writer) = reflector::store();
        let (wake, woken) = mpsc::unbounded();
        let feed = owners.join(scope.map(Into::into), connections, wake);
        Self {
            feed,
            orders,
            order_writer,
            connection_writer,
            woken,
        }
    }

    /// The order watch delivers `event`: the store first, then the index.
    fn see(&mut self, event: Event<SalesOrderStatus>) {
        self.order_writer.apply_watcher_event(&event);
        self.feed.apply(&event, &self.orders);
    }

    fn relist(&mut self, orders: &[&SalesOrderStatus]) {
        self.see(Event::Init);
        for o in orders {
            self.see(Event::InitApply((*o).clone()));
        }
        self.see(Event::InitDone);
    }

    fn connect(&mut self, ns: &str, name: &str, url: &str) {
        let conn = D365Connection::test(url).named(name).in_namespace(ns);
        self.connection_writer
            .apply_watcher_event(&Event::Apply(conn));
    }

    /// Orders woken since the last call, as `namespace/name`.
    fn woken(&mut self) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(r) = self.woken.try_recv() {
            names.push(format!("{}/{}", r.namespace.unwrap_or_default(), r.name));
        }
        names.sort();
        names
    }

    /// The owner other than `order`, once every controller has listed.
    fn owner_of(&self, order: &SalesOrderStatus) -> Option<String> {
        self.feed
            .owner_of(order)
            .now_or_never()
            .expect("every controller has listed")
    }
}

/// SO-1 of USMF in `ns`, named `name`, through connection usmf, created at `t`.
fn order(ns: &str, name: &str, t: i64) -> SalesOrderStatus {
    SalesOrderStatus::test(1)
        .for_order("USMF", "SO-1")
        .named(name)
        .in_namespace(ns)
        .created_at(t)
}

/// One controller for all namespaces, listed, with connection usmf in
/// namespaces a and b reaching one environment.
fn one_controller() -> Controller {
    let owners = Arc::new(Owners::new(1));
    let mut ctl = Controller::join(&owners, None);
    ctl.connect("a", "usmf", "https://prod.example");
    ctl.connect("b", "usmf", "https://PROD.example/");
    ctl.relist(&[]);
    ctl.feed.listed();
    ctl
}

#[test]
fn the_oldest_object_anywhere_writes_and_the_next_takes_over_when_it_goes() {
    let mut ctl = one_controller();
    let (owner, dup) = (order("b", "old", 100), order("a", "new", 200));
    let dup = dup
        .for_order("usmf", "so-1  ")
        .wanting(SalesStatus::Canceled);
    ctl.see(Event::Apply(owner.clone()));
    ctl.see(Event::Apply(dup.clone()));
    assert_eq!(ctl.owner_of(&dup).as_deref(), Some("b/old"));
    assert_eq!(ctl.owner_of(&owner), None);
    assert_eq!(
        ctl.woken(),
        Vec::<String>::new(),
        "the duplicate already yielded to it"
    );

    ctl.see(Event::Delete(owner.clone()));
    assert_eq!(ctl.woken(), ["a/new"], "woken at once, not at the recheck");
    assert_eq!(ctl.owner_of(&dup), None);
}

#[test]
fn an_older_newcomer_wakes_the_owner_it_displaces() {
    let mut ctl = one_controller();
    let first = order("a", "first", 200);
    ctl.see(Event::Apply(first.clone()));
    assert_eq!(ctl.owner_of(&first), None);
    // Listed later (another controller, a re-list), yet older.
    let older = order("b", "older", 100);
    ctl.see(Event::InitApply(older.clone()));
    assert_eq!(
        ctl.woken(),
        Vec::<String>::new(),
        "its own reconcile decides"
    );
    assert_eq!(ctl.owner_of(&older), None);
    assert_eq!(ctl.woken(), ["a/first"]);
    assert_eq!(ctl.owner_of(&first).as_deref(), Some("b/older"));
    assert_eq!(ctl.owner_of(&older), None);
    assert_eq!(
        ctl.woken(),
        Vec::<String>::new(),
        "steady state wakes nobody"
    );
}

#[test]
fn connections_decide_the_environment_when_asked() {
    let mut ctl = one_controller();
    let (a, b) = (order("a", "x", 100), order("b", "y", 200));
    ctl.see(Event::Apply(a.clone()));
    ctl.see(Event::Apply(b.clone()));
    assert_eq!(ctl.owner_of(&b).as_deref(), Some("a/x"));
    // a's connection moves to another environment: b owns its own again.
    ctl.connect("a", "usmf", "https://uat.example");
    assert_eq!(ctl.owner_of(&a), None);
    assert_eq!(ctl.woken(), ["b/y"], "b yielded to a, which left");
    assert_eq!(ctl.owner_of(&b), None);
    // An unresolvable connection is only itself.
    let c = order("c", "z", 50);
    ctl.see(Event::Apply(c.clone()));
    assert_eq!((ctl.owner_of(&c), ctl.owner_of(&b)), (None, None));
}

#[test]
fn a_relist_drops_objects_whose_delete_was_missed() {
    let mut ctl = one_controller();
    let (owner, dup) = (order("a", "x", 100), order("b", "y", 200));
    ctl.relist(&[&owner, &dup]);
    assert_eq!(ctl.owner_of(&dup).as_deref(), Some("a/x"));
    ctl.woken();
    ctl.relist(&[&dup]);
    assert_eq!(ctl.woken(), ["b/y"]);
    assert_eq!(ctl.owner_of(&dup), None);
}

#[test]
fn a_stale_delete_spares_a_recreated_object() {
    let mut ctl = one_controller();
    let (owner, dup) = (order("a", "x", 100), order("b", "y", 200));
    let mut stale = owner.clone();
    stale.metadata.uid = Some("an-older-uid".into());
    ctl.see(Event::Apply(owner.clone()));
    ctl.see(Event::Apply(dup.clone()));
    ctl.see(Event::Delete(stale));
    assert_eq!(ctl.owner_of(&dup).as_deref(), Some("a/x"));
}

#[test]
fn an_object_naming_another_order_leaves_its_old_one() {
    let mut ctl = one_controller();
    let (owner, dup) = (order("a", "x", 100), order("b", "y", 200));
    ctl.see(Event::Apply(owner.clone()));
    ctl.see(Event::Apply(dup.clone()));
    assert_eq!(ctl.owner_of(&dup).as_deref(), Some("a/x"));
    let moved = owner.for_order("USMF", "SO-2");
    ctl.see(Event::Apply(moved.clone()));
    assert_eq!(ctl.woken(), ["b/y"]);
    assert_eq!((ctl.owner_of(&dup), ctl.owner_of(&moved)), (None, None));
}

#[test]
fn a_deleting_owner_hands_over_before_it_is_gone() {
    let mut ctl = one_controller();
    let (owner, dup) = (order("a", "x", 100), order("b", "y", 200));
    ctl.see(Event::Apply(owner.clone()));
    ctl.see(Event::Apply(dup.clone()));
    assert_eq!(ctl.owner_of(&dup).as_deref(), Some("a/x"));
    let mut deleting = owner.clone();
    deleting.metadata.deletion_timestamp = dup.metadata.creation_timestamp.clone();
    ctl.see(Event::Apply(deleting.clone()));
    assert_eq!(ctl.woken(), ["b/y"]);
    assert_eq!(ctl.owner_of(&dup), None);
    assert_eq!(ctl.owner_of(&deleting).as_deref(), Some("b/y"));
}

#[test]
fn controllers_share_the_index_and_each_wakes_only_its_own_orders() {
    let owners = Arc::new(Owners::new(2));
    let mut a = Controller::join(&owners, Some("a"));
    let mut b = Controller::join(&owners, Some("b"));
    a.connect("a", "usmf", "https://prod.example");
    b.connect("b", "usmf", "https://prod.example");
    let (owner, dup) = (order("a", "x", 100), order("b", "y", 200));
    a.relist(&[&owner]);
    a.feed.listed();
    assert!(
        a.feed.owner_of(&owner).now_or_never().is_none(),
        "no decision before every controller has listed"
    );
    b.relist(&[&dup]);
    b.feed.listed();
    assert_eq!(b.owner_of(&dup).as_deref(), Some("a/x"));
    a.see(Event::Delete(owner));
    assert_eq!((a.woken(), b.woken()), (vec![], vec!["b/y".to_owned()]));
    // b's re-list drops nothing of a's namespace.
    let other = order("a", "z", 300);
    a.see(Event::Apply(other.clone()));
    b.relist(&[&dup]);
    assert_eq!(a.owner_of(&other).as_deref(), Some("b/y"));
}

#[test]
fn a_lone_claim_takes_room_for_one_and_a_duplicate_still_joins_it() {
    let mut c = one_controller();
    c.see(Event::Apply(order("a", "first", 10)));
    let capacity = |owners: &Owners| {
        let state = lock(&owners.state);
        state.claims.values().map(Vec::capacity).collect::<Vec<_>>()
    };
    assert_eq!(capacity(&c.feed.owners), [1]);
    c.see(Event::Apply(order("a", "second", 20)));
    assert_eq!(capacity(&c.feed.owners).len(), 1);
    let second = order("a", "second", 20);
    assert_eq!(c.owner_of(&second).as_deref(), Some("a/first"));
}
