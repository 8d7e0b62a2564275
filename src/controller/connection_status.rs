//! D365Connection health: after a connection or its Secret changes, resolve
//! it and obtain a token (no D365 data request), then record the result as
//! the connection's Ready condition, so `kubectl get d365c` answers "do my
//! credentials work?" before any order depends on them.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::MANAGER;
use super::connections::Connections;
use super::context::Context;
use crate::api::{ConditionType, D365Connection, D365ConnectionStatus, Reason};
use crate::d365::D365Error;

/// Handles one watch event of a connection; returns the connection whose
/// orders must be requeued: on a new generation (spec change) or deletion.
/// The connection's own status writes are neither, so they requeue nothing.
pub fn on_event<'a>(
    ctx: &Arc<Context>,
    event: &'a Event<D365Connection>,
) -> Option<&'a D365Connection> {
    let (conn, deleted) = match event {
        Event::Apply(c) | Event::InitApply(c) => (c, false),
        Event::Delete(c) => (c, true),
        Event::Init | Event::InitDone => return None,
    };
    let key = (conn.namespace().unwrap_or_default(), conn.name_any());
    let mut seen = ctx.checked_connections.lock().unwrap();
    if deleted {
        seen.remove(&key);
        ctx.d365.forget(&key.0, &key.1);
        return Some(conn);
    }
    if seen.insert(key, conn.metadata.generation) == Some(conn.metadata.generation) {
        return None;
    }
    drop(seen);
    spawn_check(ctx, conn);
    Some(conn)
}

/// Starts a check of `conn` once the caches have synced, when its
/// generation or Secret changed since the last check. With a label selector
/// only connections that a selected order uses are checked: another
/// operator instance may own the rest.
pub fn spawn_check(ctx: &Arc<Context>, conn: &D365Connection) {
    if !ctx.caches_ready.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let (ns, name) = (conn.namespace().unwrap_or_default(), conn.name_any());
    let secret = &conn.spec.auth.client_secret_ref.name;
    let secret_version = ctx
        .secrets
        .get(&ObjectRef::new(secret).within(&ns))
        .and_then(|s| s.resource_version());
    let fingerprint = (conn.metadata.generation, secret_version);
    let key = (ns.clone(), name.clone());
    if ctx.checked.lock().unwrap().get(&key) == Some(&fingerprint) {
        return;
    }
    let used = || {
        ctx.orders.state().iter().any(|o| {
            o.namespace().as_deref() == Some(ns.as_str()) && o.spec.connection_ref.name == name
        })
    };
    if ctx.only_used_connections && !used() {
        return;
    }
    ctx.checked.lock().unwrap().insert(key, fingerprint);
    tokio::spawn(check(ctx.clone(), ns, name));
}

/// Checks the connection an order uses, if it was never checked in its
/// current form (e.g. skipped before the order existed).
pub fn spawn_check_for_order(ctx: &Arc<Context>, namespace: &str, connection: &str) {
    if let Some(conn) = ctx
        .connections
        .get(&ObjectRef::new(connection).within(namespace))
    {
        spawn_check(ctx, &conn);
    }
}

/// Checks one connection and patches its status when the Ready condition
/// changed. Best effort: failures are logged, orders report their own.
pub async fn check(ctx: Arc<Context>, namespace: String, name: String) {
    let (ready, reason, message) = match Connections::resolve(&ctx, &namespace, &name).await {
        Err(e) => (false, e.reason(), e.to_string()),
        Ok(resolved) => match resolved.client.authenticate().await {
            Ok(()) => (
                true,
                Reason::Authenticated,
                format!(
                    "token obtained for {}",
                    resolved.client.settings().effective_scope()
                ),
            ),
            Err(e @ D365Error::Unavailable { .. }) => (false, Reason::Unavailable, e.to_string()),
            Err(e) => (false, Reason::Unauthorized, e.to_string()),
        },
    };
    if reason == Reason::Unavailable {
        // Transient: let the next order reconcile or event check again.
        ctx.checked
            .lock()
            .unwrap()
            .remove(&(namespace.clone(), name.clone()));
    }
    let Some(conn) = ctx
        .connections
        .get(&ObjectRef::new(&name).within(&namespace))
    else {
        return; // deleted meanwhile
    };
    let current = conn.status.clone().unwrap_or_default();
    let next = ready_status(&current, ready, reason, &message, conn.metadata.generation);
    if next == current {
        return;
    }
    let api: Api<D365Connection> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({ "status": next });
    match api
        .patch_status(
            &conn.name_any(),
            &PatchParams::apply(MANAGER),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            info!(%namespace, connection = %name, ready, reason = reason.as_str(), "connection status")
        }
        Err(e) => {
            warn!(%namespace, connection = %name, error = %e, "writing connection status failed")
        }
    }
}

/// The status with its Ready condition set; the transition time moves only
/// when Ready flips.
pub fn ready_status(
    current: &D365ConnectionStatus,
    ready: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
) -> D365ConnectionStatus {
    let status = if ready { "True" } else { "False" };
    let kind = ConditionType::Ready.as_str();
    let previous = current.conditions.iter().find(|c| c.type_ == kind);
    let since = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let ready_condition = Condition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    };
    let mut conditions: Vec<Condition> = current
        .conditions
        .iter()
        .filter(|c| c.type_ != kind)
        .cloned()
        .collect();
    conditions.insert(0, ready_condition);
    D365ConnectionStatus { conditions }
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
        let good = ready_status(&bad, true, Reason::Authenticated, "token", Some(1));
        assert_eq!(
            (good.conditions[0].status.as_str(), good.conditions.len()),
            ("True", 1)
        );
    }
}
