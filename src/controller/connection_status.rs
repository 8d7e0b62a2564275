//! D365Connection health: after a connection or its Secret changes, resolve
//! it and obtain a token (no D365 data request), then record the result as
//! the connection's Ready condition, so `kubectl get d365c` answers "do my
//! credentials work?" before any order depends on them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher::Event;
use kube::{Api, ResourceExt};
use tracing::{info, warn};

use super::capabilities::{METADATA_RETRY, next_check, summary, verdict};
use super::context::{Context, replace_status};
use super::sync::Resolved;
use crate::api::{D365Connection, D365ConnectionStatus, EntitySummary, Reason};
use crate::d365::{CapabilityError, D365Error, MetadataError};
use crate::locks::lock;
use crate::reconcile::{Kstatus, set_kstatus};

/// A connection object's uid: one deleted and recreated under its name is
/// another object, with no status yet, and must be checked again.
type Uid = String;
/// A connection's (generation, Secret resourceVersion) when last checked.
type CheckedAs = (Option<i64>, Option<String>);
/// The form last checked, and when a check of the same form is due again
/// (to read `$metadata` afresh: daily, or sooner after a failed read).
type Checked = (CheckedAs, Instant);

/// What was checked in which form, so each form is checked once.
#[derive(Default)]
pub struct Checks {
    /// Connection generations last seen, so status-only updates of a
    /// connection neither re-check it nor requeue its orders.
    seen: Mutex<HashMap<Uid, Option<i64>>>,
    /// (generation, Secret resourceVersion) of each connection's last
    /// check, and when it is due again.
    checked: Mutex<HashMap<Uid, Checked>>,
    /// With a label selector, only connections of selected orders are
    /// checked: another operator instance may own the rest.
    pub only_used: bool,
}

/// Handles one watch event of a connection; returns the connection whose
/// orders must be requeued: on a new generation (spec change), a new
/// object, or deletion. The connection's own status writes are none of
/// these, so they requeue nothing. After a re-list, what belonged to
/// connections no longer listed is dropped.
pub fn on_event(ctx: &Arc<Context>, event: &Event<D365Connection>) -> Option<D365Connection> {
    let (conn, deleted) = match event {
        Event::Apply(c) | Event::InitApply(c) => (c, false),
        Event::Delete(c) => (c, true),
        Event::InitDone => {
            prune(ctx);
            return None;
        }
        Event::Init => return None,
    };
    let uid = conn.uid().unwrap_or_default();
    if deleted {
        lock(&ctx.checks.seen).remove(&uid);
        lock(&ctx.checks.checked).remove(&uid);
        ctx.d365
            .forget(&conn.namespace().unwrap_or_default(), &conn.name_any());
        return Some(conn.clone());
    }
    if lock(&ctx.checks.seen).insert(uid, conn.metadata.generation)
        == Some(conn.metadata.generation)
    {
        return None;
    }
    spawn_check(ctx, conn);
    Some(conn.clone())
}

/// Starts a check of `conn` once the caches have synced, when its
/// generation or Secret changed since the last check.
pub fn spawn_check(ctx: &Arc<Context>, conn: &D365Connection) {
    if !ctx.caches_synced() {
        return;
    }
    let (ns, name) = (conn.namespace().unwrap_or_default(), conn.name_any());
    let secret_version = conn
        .spec
        .auth
        .credentials_secret()
        .and_then(|secret| ctx.d365.secret_version(&ns, secret));
    let fingerprint = (conn.metadata.generation, secret_version);
    let uid = conn.uid().unwrap_or_default();
    let now = Instant::now();
    let fresh = |(form, due): &Checked| *form == fingerprint && now < *due;
    if lock(&ctx.checks.checked).get(&uid).is_some_and(fresh) {
        return;
    }
    if ctx.checks.only_used && !ctx.by_connection.is_used(&ns, &name) {
        return;
    }
    let due = next_check(now, true);
    lock(&ctx.checks.checked).insert(uid.clone(), (fingerprint, due));
    tokio::spawn(check(ctx.clone(), ns, name, uid));
}

/// Forgets the checks and clients of connections the store no longer
/// holds: their Delete was missed in a watch gap.
fn prune(ctx: &Context) {
    let live: HashSet<Uid> = ctx
        .d365
        .connections
        .state()
        .iter()
        .filter_map(|c| c.uid())
        .collect();
    lock(&ctx.checks.seen).retain(|uid, _| live.contains(uid));
    lock(&ctx.checks.checked).retain(|uid, _| live.contains(uid));
    ctx.d365.prune();
}

/// Checks the connection an order uses, if it was never checked in its
/// current form (e.g. skipped before the order existed).
pub fn spawn_check_for_order(ctx: &Arc<Context>, namespace: &str, connection: &str) {
    if let Some(conn) = ctx.d365.get(namespace, connection) {
        spawn_check(ctx, &conn);
    }
}

/// Checks one connection (object `uid`) and patches its status when the
/// Ready condition changed. Best effort: failures are logged, orders
/// report their own.
async fn check(ctx: Arc<Context>, namespace: String, name: String, uid: Uid) {
    let (verdict, entity) = match authenticate(&ctx, &namespace, &name).await {
        Ok(resolved) => {
            let inspected = inspect(&resolved, &ctx, &namespace, &name).await;
            resolved.rules.capabilities.settle();
            inspected
        }
        Err((resolved, verdict)) => {
            // Its orders fail on their own; none should wait for $metadata.
            if let Some(resolved) = resolved {
                resolved.rules.capabilities.settle();
            }
            (verdict, None)
        }
    };
    let (ready, reason, message) = verdict;
    if reason == Reason::Unavailable {
        // Transient: checked again after UNAVAILABLE_RECHECK by a timer
        // (so a connection no order uses does not read InProgress forever
        // once the service is back) or by the first event after that; the
        // reconciles of its orders meanwhile find the check fresh, so an
        // outage costs one token request per interval, not one per order.
        if let Some((_, due)) = lock(&ctx.checks.checked).get_mut(&uid) {
            *due = Instant::now() + UNAVAILABLE_RECHECK;
        }
        recheck_later(&ctx, &namespace, &name, &uid);
    }
    if reason == Reason::MetadataUnavailable
        && let Some((_, due)) = lock(&ctx.checks.checked).get_mut(&uid)
    {
        *due = next_check(Instant::now(), false);
    }
    let Some(conn) = ctx
        .d365
        .get(&namespace, &name)
        .filter(|c| c.uid().unwrap_or_default() == uid)
    else {
        return; // deleted (maybe recreated, checked on its own) meanwhile
    };
    let current = conn.status.clone().unwrap_or_default();
    let mut next = ready_status(&current, ready, reason, &message, conn.metadata.generation);
    next.entity = entity;
    if next == current {
        return;
    }
    let api: Api<D365Connection> = Api::namespaced(ctx.client.clone(), &namespace);
    match replace_status(&api, &name, &next).await {
        Ok(_) => {
            super::events::publish_connection(&conn, &ctx, (ready, reason, &message));
            info!(%namespace, connection = %name, ready, reason = reason.as_str(), "connection status")
        }
        Err(e) => {
            warn!(%namespace, connection = %name, error = %e, "writing connection status failed")
        }
    }
}

/// How soon a connection whose service or token endpoint was unreachable
/// is checked again without any event: one token request per interval.
pub const UNAVAILABLE_RECHECK: Duration = Duration::from_secs(10);

/// Checks the connection (the same object, `uid`) again after
/// [`UNAVAILABLE_RECHECK`], when its last check is due by then (an event
/// with a new form checked it meanwhile: that check is fresh and this one
/// is skipped).
fn recheck_later(ctx: &Arc<Context>, namespace: &str, name: &str, uid: &str) {
    let (ctx, namespace, name, uid) = (
        ctx.clone(),
        namespace.to_owned(),
        name.to_owned(),
        uid.to_owned(),
    );
    tokio::spawn(async move {
        tokio::time::sleep(UNAVAILABLE_RECHECK).await;
        let conn = ctx.d365.get(&namespace, &name);
        if let Some(conn) = conn.filter(|c| c.uid().is_some_and(|u| u == uid)) {
            spawn_check(&ctx, &conn);
        }
    });
}

/// (ready, reason, message) of a connection's Ready condition.
type Verdict = (bool, Reason, String);

/// Resolves the connection and obtains a token: the connection, or the
/// verdict on why not, with the connection when it resolved.
async fn authenticate(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Resolved, (Option<Resolved>, Verdict)> {
    let resolved = match ctx.d365.resolve(namespace, name).await {
        Err(e) => return Err((None, (false, e.reason(), e.to_string()))),
        Ok(resolved) => resolved,
    };
    let verdict = match resolved.client.authenticate().await {
        Ok(()) => return Ok(resolved),
        Err(e @ D365Error::Unavailable { .. }) => (false, Reason::Unavailable, e.to_string()),
        Err(e @ D365Error::Redirected { .. }) => (false, Reason::ConnectionNotReady, e.to_string()),
        Err(e) => (false, Reason::Unauthorized, e.to_string()),
    };
    Err((Some(resolved), verdict))
}

/// Reads the connection's `$metadata` (credentials known to work): the
/// verdict on its mapped fields and `status.entity`. The capabilities go
/// to the connection's orders. A `$metadata` that cannot be read leaves
/// the connection Ready (orders work; their writes are just not checked
/// first) with reason MetadataUnavailable.
async fn inspect(
    resolved: &Resolved,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> (Verdict, Option<EntitySummary>) {
    let Some(conn) = ctx.d365.get(namespace, name) else {
        return ((false, Reason::ConnectionNotReady, "deleted".into()), None);
    };
    let mapping = &conn.spec.fields;
    let fields = [
        mapping.sales_status.as_str(),
        mapping.delivery_date.as_str(),
    ];
    let scope = resolved.client.settings().effective_scope();
    match resolved.client.entity_capabilities(&fields).await {
        Ok(caps) => {
            let (ready, reason, message) = verdict(&caps, mapping);
            let entity = summary(&caps, mapping);
            resolved.rules.capabilities.set(caps);
            let message = format!("token obtained for {scope}; {message}");
            ((ready, reason, message), Some(entity))
        }
        Err(CapabilityError::Metadata(MetadataError::EntitySetNotFound { entity_set })) => {
            let message = format!(
                "entity set {entity_set} is not in the service's $metadata; \
                 set spec.entitySet to one of its entity sets (e.g. SalesOrderHeadersV2)"
            );
            ((false, Reason::EntitySetNotFound, message), None)
        }
        Err(e) => {
            warn!(%namespace, connection = %name, error = %e, "reading $metadata failed");
            let message = format!(
                "token obtained for {scope}; $metadata could not be read ({e}): \
                 field capabilities unknown, writes are sent unchecked (read again in {} min)",
                METADATA_RETRY.as_secs() / 60
            );
            ((true, Reason::MetadataUnavailable, message), None)
        }
    }
}

/// The status with its kstatus conditions set for `generation`: Ready as
/// checked, Reconciling while a transient failure (Unavailable) is retried,
/// Stalled for what needs a human (credentials, capabilities); and the
/// top-level `observedGeneration`, so kstatus and Argo CD read a connection
/// whose spec changed as in progress until it is checked again. Transition
/// times move only when a condition flips.
pub fn ready_status(
    current: &D365ConnectionStatus,
    ready: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
) -> D365ConnectionStatus {
    let mut next = current.clone();
    next.observed_generation = generation;
    let now = Time(Timestamp::now());
    let states = Kstatus {
        ready,
        reconciling: !ready && reason.is_transient(),
        stalled: !ready && reason.is_stalled(),
    };
    set_kstatus(
        &mut next.conditions,
        states,
        reason,
        message,
        generation,
        &now,
    );
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_flips_move_the_transition_time_and_repeats_change_nothing() {
        let empty = D365ConnectionStatus::default();
        let bad = ready_status(&empty, false, Reason::SecretNotFound, "no secret", Some(1));
        assert_eq!(bad.conditions[0].reason, "SecretNotFound");
        let again = ready_status(&bad, false, Reason::SecretNotFound, "no secret", Some(1));
        assert_eq!(bad, again, "same result, same status: no write");
        let good = ready_status(&bad, true, Reason::Authenticated, "token", Some(2));
        assert_eq!(good.observed_generation, Some(2));
        assert_eq!(good.conditions[0].status, "True");
        assert_eq!(
            good.conditions.len(),
            1,
            "Stalled is removed once the connection is good"
        );
    }

    /// (Ready, Reconciling, Stalled) of each connection verdict: what
    /// needs a human is Stalled, an unreachable service is retried, and an
    /// unreadable `$metadata` leaves the connection usable.
    #[test]
    fn condition_table() {
        let empty = D365ConnectionStatus::default();
        for (ready, reason, want) in [
            (true, Reason::Authenticated, ["True", "False", "False"]),
            (
                true,
                Reason::MetadataUnavailable,
                ["True", "False", "False"],
            ),
            (false, Reason::Unavailable, ["False", "True", "False"]),
            (false, Reason::SecretNotFound, ["False", "False", "True"]),
            (false, Reason::Unauthorized, ["False", "False", "True"]),
            (
                false,
                Reason::ConnectionNotReady,
                ["False", "False", "True"],
            ),
            (false, Reason::FieldNotFound, ["False", "False", "True"]),
            (false, Reason::FieldNotEditable, ["False", "False", "True"]),
            (false, Reason::EntitySetNotFound, ["False", "False", "True"]),
        ] {
            let s = ready_status(&empty, ready, reason, "m", Some(4));
            // Reconciling and Stalled are present only while True.
            let want: Vec<(&str, &str)> = ["Ready", "Reconciling", "Stalled"]
                .into_iter()
                .zip(want)
                .filter(|(kind, status)| *kind == "Ready" || *status == "True")
                .collect();
            let got: Vec<_> = s
                .conditions
                .iter()
                .map(|c| (c.type_.as_str(), c.status.as_str()))
                .collect();
            assert_eq!(got, want, "{reason}");
            assert!(s.conditions.iter().all(|c| c.reason == reason.as_str()));
            assert_eq!(s.observed_generation, Some(4));
        }
    }
}
