//! Per-object state follows the order store, not only Delete events: a
//! re-list that no longer holds an object (its Delete missed in a watch
//! gap) forgets it, as does the periodic prune; the exported
//! `sales_order_operator_objects` gauge is the witness.

use crate::fixtures::Placed;
use kube::runtime::reflector::store::Writer;

use super::*;
use crate::api::Reason;

/// A controller's context on stores fed by hand; its client points at
/// nothing and is never used.
fn controller(metrics: &Arc<Metrics>, scope: &str) -> (Arc<Context>, Writer<SalesOrderStatus>) {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
    let client = Client::try_from(config).expect("a client (no connection made)");
    let options = Options {
        namespace: Some(scope.into()),
        ..Options::default()
    };
    let (orders, order_writer) = reflector::store();
    let (connections, _) = reflector::store();
    let (secrets, _) = reflector::store();
    let (wake, _) = mpsc::unbounded();
    let feed = options
        .owners
        .join(options.namespace.clone(), connections.clone(), wake);
    let (_, synced) = watch::channel(true);
    let ctx = context(
        &client,
        &options,
        metrics.clone(),
        (&orders, feed),
        (connections, secrets),
        synced,
    );
    (ctx, order_writer)
}

/// The watch delivers `event`: the store first, then the handler.
fn see(ctx: &Context, writer: &mut Writer<SalesOrderStatus>, event: Event<SalesOrderStatus>) {
    writer.apply_watcher_event(&event);
    on_order_event(ctx, &event);
}

fn relist(ctx: &Context, writer: &mut Writer<SalesOrderStatus>, orders: &[&SalesOrderStatus]) {
    see(ctx, writer, Event::Init);
    for o in orders {
        see(ctx, writer, Event::InitApply((*o).clone()));
    }
    see(ctx, writer, Event::InitDone);
}

/// Orders counted with `reason`, over every namespace and connection (a
/// series no order counts in is gone, which reads 0).
fn objects(metrics: &Metrics, reason: Reason) -> String {
    let label = format!("reason=\"{}\"", reason.as_str());
    let total: i64 = metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("sales_order_operator_objects{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    total.to_string()
}

#[tokio::test]
async fn a_relist_forgets_objects_whose_delete_was_missed() {
    let metrics = Arc::new(Metrics::default());
    let (ctx, mut writer) = controller(&metrics, "a");
    let a = SalesOrderStatus::test(1).in_namespace("a").created_at(1);
    let b = SalesOrderStatus::test(2).in_namespace("a").created_at(2);
    relist(&ctx, &mut writer, &[&a, &b]);
    let (ra, rb) = (ObjectRef::from_obj(&a), ObjectRef::from_obj(&b));
    ctx.report(&ra, "usmf", Reason::Updated);
    ctx.report(&rb, "usmf", Reason::Conflict);
    ctx.record_failure(&rb, crate::reconcile::FailureKind::Conflict);
    assert_eq!(objects(&metrics, Reason::Conflict), "1");

    relist(&ctx, &mut writer, &[&a]);
    assert_eq!(objects(&metrics, Reason::Conflict), "0", "b is gone");
    assert_eq!(objects(&metrics, Reason::Updated), "1", "a stays");
    assert_eq!(ctx.failures(&rb), 0);
}

#[tokio::test]
async fn a_prune_forgets_what_a_late_reconcile_recorded_and_spares_other_controllers() {
    let metrics = Arc::new(Metrics::default());
    let (ctx, mut writer) = controller(&metrics, "a");
    let (other, mut other_writer) = controller(&metrics, "b");
    let a = SalesOrderStatus::test(1).in_namespace("a").created_at(1);
    let elsewhere = SalesOrderStatus::test(1).in_namespace("b").created_at(1);
    relist(&ctx, &mut writer, &[&a]);
    relist(&other, &mut other_writer, &[&elsewhere]);
    other.report(&ObjectRef::from_obj(&elsewhere), "usmf", Reason::Updated);

    see(&ctx, &mut writer, Event::Delete(a.clone()));
    // The reconcile that was running when the Delete came ends now.
    ctx.report(&ObjectRef::from_obj(&a), "usmf", Reason::Updated);
    assert_eq!(objects(&metrics, Reason::Updated), "2");
    ctx.prune();
    assert_eq!(
        objects(&metrics, Reason::Updated),
        "1",
        "a forgotten; b's own object kept by the controller of a"
    );
}
