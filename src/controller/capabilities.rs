//! What a connection's `$metadata` says of its mapped fields, in the forms
//! the operator uses: shared with the connection's orders (so a change
//! needing a field that is not editable is never sent, and dates go out
//! in their property's type), summarised in `status.entity`, and judged
//! into the connection's Ready reason with a message that says what to
//! change.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::sync::OrderRules;
use crate::api::{EntitySummary, FieldMapping, MappedField, Reason};
use crate::d365::{EntityCapabilities, FieldCapability};
use crate::reconcile::{Action, Capabilities, Desired, FieldCaps, Observed, plan_with};

/// How long learnt capabilities are trusted before the check reads
/// `$metadata` again: it changes only with a deployment, and F&O's is
/// tens of MB.
pub const METADATA_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// How soon a check whose `$metadata` read failed may try again.
pub const METADATA_RETRY: Duration = Duration::from_secs(600);

/// Longest an order about to write waits for its connection's first check
/// to read `$metadata` (after a start or a connection change, both run at
/// once); past it the write goes out unchecked.
pub const CAPABILITY_WAIT: Duration = Duration::from_secs(15);

/// The capabilities the connection check learnt, shared by every order of
/// the connection through its rules. Empty until learnt: unknown fields
/// are written as if editable. `settled` turns true once the check has
/// tried (learnt or not), so a write need not wait for it any longer; the
/// default is settled (no check will come: tests, benchmarks), a client
/// built for a connection starts [`KnownFields::pending`].
#[derive(Clone, Debug)]
pub struct KnownFields {
    caps: Arc<RwLock<Option<Arc<EntityCapabilities>>>>,
    settled: Arc<watch::Sender<bool>>,
}

impl Default for KnownFields {
    fn default() -> Self {
        Self {
            caps: Arc::default(),
            settled: Arc::new(watch::Sender::new(true)),
        }
    }
}

impl KnownFields {
    /// Unknown until the connection check has tried.
    pub fn pending() -> Self {
        Self {
            caps: Arc::default(),
            settled: Arc::new(watch::Sender::new(false)),
        }
    }

    pub fn set(&self, caps: EntityCapabilities) {
        *self.caps.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(caps));
        self.settle();
    }

    pub fn get(&self) -> Option<Arc<EntityCapabilities>> {
        self.caps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The check has tried: nobody waits for it any more.
    pub fn settle(&self) {
        self.settled.send_replace(true);
    }

    pub fn is_settled(&self) -> bool {
        *self.settled.borrow()
    }

    /// Waits until the check has tried, at most `limit`.
    pub async fn settled_within(&self, limit: Duration) {
        let mut settled = self.settled.subscribe();
        let _ = tokio::time::timeout(limit, settled.wait_for(|s| *s)).await;
    }

    /// The planner's view of the two mapped fields; a field `$metadata`
    /// does not list stays unknown (the read will report it).
    pub fn for_fields(&self, status_field: &str, date_field: &str) -> Capabilities {
        let Some(caps) = self.get() else {
            return Capabilities::default();
        };
        let one = |name: &str| {
            caps.fields
                .get(name)
                .map_or_else(FieldCaps::default, |f| FieldCaps {
                    editable: f.editable && caps.updatable,
                    date_only: f.is_date_only(),
                })
        };
        Capabilities {
            sales_status: one(status_field),
            delivery_date: one(date_field),
        }
    }
}

/// The mapped fields as (spec name, entity field).
fn mapped(mapping: &FieldMapping) -> [(&'static str, &str); 2] {
    [
        ("salesStatus", &mapping.sales_status),
        ("deliveryDate", &mapping.delivery_date),
    ]
}

/// Why a field is not editable, as `$metadata` put it.
fn not_editable_because<'a>(caps: &EntityCapabilities, field: &'a FieldCapability) -> &'a str {
    match &field.read_only_because {
        Some(because) => because,
        None if !caps.updatable => "the entity set is not updatable",
        None => "read-only in $metadata",
    }
}

/// The message of a mapped field that cannot be written: what, where,
/// why, and what to change.
pub fn not_editable_message(
    field: &str,
    spec_field: &str,
    entity_set: &str,
    because: &str,
) -> String {
    format!(
        "{field} is not editable on {entity_set} in this environment ({because}); \
         map {spec_field} to an editable field, e.g. a custom extension field"
    )
}

/// The spec field (`salesStatus`, `deliveryDate`) an entity field is
/// mapped from.
pub fn spec_field_of<'a>(mapping: &'a FieldMapping, field: &str) -> &'a str {
    mapped(mapping)
        .into_iter()
        .find(|(_, f)| *f == field)
        .map_or("the spec field", |(spec, _)| spec)
}

/// The order-side message for fields `$metadata` says are not editable.
pub fn order_message(known: &KnownFields, mapping: &FieldMapping, fields: &[String]) -> String {
    let caps = known.get();
    let set = caps
        .as_ref()
        .map_or("the entity set", |c| c.entity_set.as_str());
    let mut parts: Vec<String> = fields
        .iter()
        .map(|f| {
            let because = caps
                .as_ref()
                .and_then(|c| c.fields.get(f).map(|fc| not_editable_because(c, fc)))
                .unwrap_or("read-only in $metadata");
            not_editable_message(f, spec_field_of(mapping, f), set, because)
        })
        .collect();
    parts.push("no request sent".into());
    parts.join("; ")
}

/// The connection's Ready verdict from its capabilities: the first mapped
/// field that is missing or not editable makes it not Ready.
pub fn verdict(caps: &EntityCapabilities, mapping: &FieldMapping) -> (bool, Reason, String) {
    for (spec_field, name) in mapped(mapping) {
        match caps.fields.get(name) {
            None => {
                let message = format!(
                    "{name} is not a property of {} ({}) in this environment's $metadata; \
                     set spec.fields.{spec_field} to one of its properties",
                    caps.type_name(),
                    caps.entity_set
                );
                return (false, Reason::FieldNotFound, message);
            }
            Some(field) if !field.editable || !caps.updatable => {
                let because = not_editable_because(caps, field);
                let message = not_editable_message(name, spec_field, &caps.entity_set, because);
                return (false, Reason::FieldNotEditable, message);
            }
            Some(_) => {}
        }
    }
    let fields: Vec<String> = mapped(mapping)
        .iter()
        .map(|(spec, name)| format!("{spec} -> {name} ({})", caps.fields[*name].edm_type))
        .collect();
    let message = format!(
        "$metadata read: {} on {}, {}; all editable",
        caps.type_name(),
        caps.entity_set,
        fields.join(", ")
    );
    (true, Reason::Authenticated, message)
}

/// The plan with the mapped fields' capabilities. A write planned while
/// the connection's first check has not yet read `$metadata` (just after
/// a start or a connection change) waits for it, at most
/// [`CAPABILITY_WAIT`], so a field that is not editable is caught before
/// the PATCH rather than by D365.
pub(crate) async fn plan_checked(
    rules: &OrderRules,
    desired: &Desired,
    observed: &Observed,
) -> Action {
    let known = &rules.capabilities;
    let planned = || {
        let caps = known.for_fields(&rules.status_field, &rules.date_field);
        plan_with(
            desired,
            observed,
            rules.names(),
            caps,
            &rules.final_statuses,
        )
    };
    let action = planned();
    if !matches!(action, Action::Patch { .. }) || known.is_settled() {
        return action;
    }
    known.settled_within(CAPABILITY_WAIT).await;
    planned()
}

/// `status.entity`: the type and each mapped field's type and editability.
pub fn summary(caps: &EntityCapabilities, mapping: &FieldMapping) -> EntitySummary {
    let fields = mapped(mapping)
        .into_iter()
        .map(|(spec, name)| {
            let field = caps.fields.get(name);
            MappedField {
                mapping: spec.to_owned(),
                name: name.to_owned(),
                found: field.is_some(),
                edm_type: field.map(|f| f.edm_type.clone()),
                editable: field.map(|f| f.editable && caps.updatable),
            }
        })
        .collect();
    EntitySummary {
        entity_set: caps.entity_set.clone(),
        entity_type: caps.entity_type.clone(),
        key: caps.key.clone(),
        updatable: caps.updatable,
        fields,
    }
}

/// When the next check of a connection is due after one that read
/// `$metadata` (`learnt`) or failed to.
pub fn next_check(now: Instant, learnt: bool) -> Instant {
    now + if learnt {
        METADATA_REFRESH
    } else {
        METADATA_RETRY
    }
}

#[cfg(test)]
#[path = "capabilities_tests.rs"]
mod tests;
