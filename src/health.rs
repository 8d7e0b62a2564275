//! The GitOps health table: for each situation of each kind, the conditions
//! the operator writes and what kstatus (`status.Compute` of
//! sigs.k8s.io/cli-utils, behind Flux's health checks), the Argo CD Lua
//! scripts and `kubectl wait --for=condition=Ready` make of them. One table
//! for three readers: docs/operations.md "GitOps health" is rendered from it
//! (tests/it/health_table.rs checks), and tests/e2e/health.rs makes every
//! row happen on a real control plane and asserts each column.

use serde_json::Value;

/// When a row's situation holds in tests/e2e/health.rs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Objects created, the operator not started yet.
    Unseen,
    /// The operator running and settled.
    Running,
    /// The operator stopped, then the spec changed.
    SpecChanged,
}

/// One situation and its readings.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// `SalesOrderStatus` or `D365Connection`.
    pub kind: &'static str,
    pub situation: &'static str,
    /// The object tests/e2e/health.rs puts in this situation.
    pub object: &'static str,
    pub phase: Phase,
    /// [`conditions`] of the object.
    pub conditions: &'static str,
    /// `status.Compute`'s status.
    pub kstatus: &'static str,
    /// The Argo CD health script's `hs.status`.
    pub argocd: &'static str,
    /// `kubectl wait --for=condition=Ready`: `met`, or `waits` (until its
    /// timeout).
    pub kubectl_wait: &'static str,
}

const ORDER: &str = "SalesOrderStatus";
const CONNECTION: &str = "D365Connection";
const NOT_SEEN: &str = "none; generation not observed";
const HEALTHY: (&str, &str, &str) = ("Current", "Healthy", "met");
const TRYING: (&str, &str, &str) = ("InProgress", "Progressing", "waits");
const HUMAN: (&str, &str, &str) = ("Failed", "Degraded", "waits");

const fn row(
    kind: &'static str,
    situation: &'static str,
    object: &'static str,
    phase: Phase,
    conditions: &'static str,
    (kstatus, argocd, kubectl_wait): (&'static str, &'static str, &'static str),
) -> Row {
    Row {
        kind,
        situation,
        object,
        phase,
        conditions,
        kstatus,
        argocd,
        kubectl_wait,
    }
}

/// Every row, orders first.
#[rustfmt::skip]
pub const ROWS: &[Row] = &[
    row(ORDER, "just created, not yet seen by the operator", "order-updated", Phase::Unseen, NOT_SEEN, TRYING),
    row(ORDER, "spec changed, not yet observed", "order-updated", Phase::SpecChanged, "Ready=True (Updated); generation not observed", TRYING),
    row(ORDER, "D365 written and the write proven", "order-updated", Phase::Running, "Ready=True (Updated)", HEALTHY),
    row(ORDER, "D365 already matched the spec", "order-in-sync", Phase::Running, "Ready=True (InSync)", HEALTHY),
    row(ORDER, "409/412 conflict, retried", "order-conflict", Phase::Running, "Ready=False, Reconciling=True (Conflict)", TRYING),
    row(ORDER, "429 throttled, retried after Retry-After", "order-throttled", Phase::Running, "Ready=False, Reconciling=True (Throttled)", TRYING),
    row(ORDER, "D365 unavailable (5xx, timeout), retried", "order-unavailable", Phase::Running, "Ready=False, Reconciling=True (Unavailable)", TRYING),
    row(ORDER, "policy Observe and D365 differs", "order-drifted", Phase::Running, "Ready=False, Stalled=True (Drifted)", HUMAN),
    row(ORDER, "spec.suspend: true", "order-suspended", Phase::Running, "Ready=True (Suspended)", ("Current", "Suspended", "met")),
    row(ORDER, "403: the app user lacks the privilege", "order-forbidden", Phase::Running, "Ready=False, Stalled=True (Forbidden)", HUMAN),
    row(ORDER, "404: no such order in D365", "order-not-found", Phase::Running, "Ready=False, Stalled=True (NotFound)", HUMAN),
    row(ORDER, "D365 refused the write (validation)", "order-rejected", Phase::Running, "Ready=False, Stalled=True (Rejected)", HUMAN),
    row(ORDER, "the change needs a field `$metadata` says is not editable", "order-not-editable", Phase::Running, "Ready=False, Stalled=True (FieldNotEditable)", HUMAN),
    row(ORDER, "D365 accepted the write twice without applying it", "order-not-applied", Phase::Running, "Ready=False, Stalled=True (NotApplied)", HUMAN),
    row(ORDER, "the spec asks to leave a final status (Invoiced)", "order-invalid-transition", Phase::Running, "Ready=False, Stalled=True (InvalidTransition)", HUMAN),
    row(ORDER, "an older object manages the same D365 order", "order-updated-duplicate", Phase::Running, "Ready=False, Stalled=True (DuplicateOrder)", HUMAN),
    row(ORDER, "the D365Connection does not exist", "order-no-connection", Phase::Running, "Ready=False, Stalled=True (ConnectionNotReady)", HUMAN),
    row(ORDER, "the connection's Secret does not exist", "order-no-secret", Phase::Running, "Ready=False, Stalled=True (SecretNotFound)", HUMAN),
    row(CONNECTION, "just created, not yet checked", "conn-ok", Phase::Unseen, NOT_SEEN, TRYING),
    row(CONNECTION, "spec changed, not yet checked", "conn-ok", Phase::SpecChanged, "Ready=True (Authenticated); generation not observed", TRYING),
    row(CONNECTION, "token obtained, mapped fields editable", "conn-ok", Phase::Running, "Ready=True (Authenticated)", HEALTHY),
    row(CONNECTION, "token obtained, `$metadata` unreadable (orders still work)", "conn-no-metadata", Phase::Running, "Ready=True (MetadataUnavailable)", HEALTHY),
    row(CONNECTION, "the client-secret Secret is missing", "conn-no-secret", Phase::Running, "Ready=False, Stalled=True (SecretNotFound)", HUMAN),
    row(CONNECTION, "Entra refused the credentials", "conn-wrong-secret", Phase::Running, "Ready=False, Stalled=True (Unauthorized)", HUMAN),
    row(CONNECTION, "a mapped field is not on the entity type", "conn-no-field", Phase::Running, "Ready=False, Stalled=True (FieldNotFound)", HUMAN),
    row(CONNECTION, "a mapped field is not editable", "conn-not-editable", Phase::Running, "Ready=False, Stalled=True (FieldNotEditable)", HUMAN),
    row(CONNECTION, "the entity set is not in `$metadata`", "conn-no-entity-set", Phase::Running, "Ready=False, Stalled=True (EntitySetNotFound)", HUMAN),
    row(CONNECTION, "token endpoint unreachable, checked again every 10 s", "conn-unreachable", Phase::Running, "Ready=False, Reconciling=True (Unavailable)", TRYING),
];

/// The conditions of a live object (JSON as the API server returns it) in
/// the table's words: `Ready=…, Reconciling=…, Stalled=… (<Ready reason>)`,
/// or `none`, followed by `; generation not observed` while
/// `status.observedGeneration` is missing or behind `metadata.generation`.
pub fn conditions(obj: &Value) -> String {
    let status = &obj["status"];
    let of = |kind: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
    };
    let mut text = match of("Ready") {
        None => "none".to_owned(),
        Some(ready) => {
            // Ready always; the abnormal-true ones only when present.
            let parts: Vec<String> = ["Ready", "Reconciling", "Stalled"]
                .iter()
                .filter_map(|kind| {
                    let s = of(kind)?["status"].as_str().unwrap_or("-");
                    Some(format!("{kind}={s}"))
                })
                .collect();
            let reason = ready["reason"].as_str().unwrap_or("");
            format!("{} ({reason})", parts.join(", "))
        }
    };
    let generation = obj["metadata"]["generation"].as_i64();
    let observed = status["observedGeneration"].as_i64();
    if generation.is_some() && observed.is_none_or(|o| Some(o) < generation) {
        text.push_str("; generation not observed");
    }
    text
}

/// The table as it stands in docs/operations.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "| kind | situation | conditions (Ready reason) | kstatus | Argo CD | `kubectl wait --for=condition=Ready` |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in ROWS {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.kind, r.situation, r.conditions, r.kstatus, r.argocd, r.kubectl_wait
        ));
    }
    out
}
