//! `plan`: what to do about one order, given the spec and what D365 holds.

use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::api::{Policy, SalesStatus};

/// D365 writes "no date" as this day, never as null [obs].
pub const UNSET_DATE: Date = jiff::civil::date(1900, 1, 1);

/// What the spec asks for, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub sales_status: SalesStatus,
    pub delivery_date: Option<Date>,
    pub policy: Policy,
}

/// Entity field names, from the connection's `fields` mapping.
#[derive(Clone, Copy, Debug)]
pub struct FieldNames<'a> {
    pub sales_status: &'a str,
    pub delivery_date: &'a str,
}

/// What the service's `$metadata` says of one mapped field. The default,
/// for a field whose capabilities are unknown, allows the write and sends
/// dates as DateTimeOffsets, F&O's type [obs].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldCaps {
    pub editable: bool,
    /// `Edm.Date`: written `2025-02-08`, not `2025-02-08T12:00:00Z`.
    pub date_only: bool,
}

impl Default for FieldCaps {
    fn default() -> Self {
        Self {
            editable: true,
            date_only: false,
        }
    }
}

/// The capabilities of both mapped fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub sales_status: FieldCaps,
    pub delivery_date: FieldCaps,
}

/// What D365 holds, in comparable form.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub sales_status: String,
    /// None when unset (absent, null or 1900-01-01).
    pub delivery_date: Option<Date>,
}

/// The single decision of a reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// D365 equals the spec: nothing to write.
    InSync,
    /// PATCH exactly these fields (entity names) with If-Match.
    Patch { changes: Map<String, Value> },
    /// Observe policy and D365 differs in these entity fields.
    Drifted { fields: Vec<String> },
    /// The order sits in a final status and the spec asks to leave it.
    InvalidTransition { from: String, to: SalesStatus },
    /// The change needs these entity fields, which `$metadata` says are
    /// not editable: nothing is sent, D365 would refuse it.
    NotEditable { fields: Vec<String> },
}

/// An entity D365 returned that cannot be compared with the spec.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("entity has no field {field} (check the connection's spec.fields mapping)")]
    MissingField { field: String },
    #[error("entity field {field} holds {value}, which is not a {expected}")]
    BadValue {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error(
        "D365 answered order {got_company}/{got_number} when asked for {want_company}/{want_number}"
    )]
    WrongOrder {
        want_company: String,
        want_number: String,
        got_company: String,
        got_number: String,
    },
    #[error("spec.deliveryDate {value:?} is not a valid date: {why}")]
    BadDesiredDate { value: String, why: String },
    /// The CRD refuses these; an object stored before it did still has one.
    #[error(
        "spec.deliveryDate {value:?} is on or before {UNSET_DATE}, which D365 stores as \"no date\": \
         a write of it could never be seen applied (set a later date, or leave the field out)"
    )]
    UnsetDesiredDate { value: String },
}

impl Desired {
    pub fn new(
        sales_status: SalesStatus,
        delivery_date: Option<&str>,
        policy: Policy,
    ) -> Result<Self, PlanError> {
        let delivery_date = delivery_date
            .map(|s| {
                s.parse::<Date>().map_err(|e| PlanError::BadDesiredDate {
                    value: s.to_string(),
                    why: e.to_string(),
                })
            })
            .transpose()?;
        if let Some(date) = delivery_date.filter(|d| *d <= UNSET_DATE) {
            return Err(PlanError::UnsetDesiredDate {
                value: date.to_string(),
            });
        }
        Ok(Self {
            sales_status,
            delivery_date,
            policy,
        })
    }
}

impl Observed {
    /// Reads the mapped fields of an entity. Dates compare by day: D365
    /// sends DateTimeOffset strings, and 1900-01-01 means unset [obs].
    /// `dataAreaId` compares case-insensitively: D365 answers it lower-case
    /// whatever case was asked [obs]; so does the order number, as F&O's
    /// collation matches `so-1` to `SO-1` and answers its own spelling
    /// [unverified, likely]. Absent key fields (a `$select` that left them
    /// out) are not checked.
    pub fn from_entity(
        fields: &Map<String, Value>,
        names: FieldNames<'_>,
        key: (&str, &str),
    ) -> Result<Self, PlanError> {
        let text = |f: &str| fields.get(f).and_then(Value::as_str);
        let company_ok = text("dataAreaId").is_none_or(|c| c.eq_ignore_ascii_case(key.0));
        let number_ok =
            text("SalesOrderNumber").is_none_or(|n| n.to_lowercase() == key.1.to_lowercase());
        if !company_ok || !number_ok {
            return Err(PlanError::WrongOrder {
                want_company: key.0.into(),
                want_number: key.1.into(),
                got_company: text("dataAreaId").unwrap_or_default().into(),
                got_number: text("SalesOrderNumber").unwrap_or_default().into(),
            });
        }
        let sales_status = match fields.get(names.sales_status) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(PlanError::BadValue {
                    field: names.sales_status.into(),
                    value: other.to_string(),
                    expected: "status string",
                });
            }
            None => {
                return Err(PlanError::MissingField {
                    field: names.sales_status.into(),
                });
            }
        };
        let delivery_date = match fields.get(names.delivery_date) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => parse_entity_date(s).ok_or_else(|| PlanError::BadValue {
                field: names.delivery_date.into(),
                value: s.clone(),
                expected: "date",
            })?,
            Some(other) => {
                return Err(PlanError::BadValue {
                    field: names.delivery_date.into(),
                    value: other.to_string(),
                    expected: "date",
                });
            }
        };
        Ok(Self {
            sales_status,
            delivery_date,
        })
    }
}

/// Date part of a DateTimeOffset (`2025-02-08T12:00:00Z`) or a bare date;
/// `Some(None)` for the unset marker.
fn parse_entity_date(s: &str) -> Option<Option<Date>> {
    let day: Date = s.get(..10)?.parse().ok()?;
    Some((day != UNSET_DATE).then_some(day))
}

/// The DateTimeOffset D365 expects for a date: noon UTC, as it stores dates.
pub fn date_to_entity(date: Date) -> String {
    format!("{date}T12:00:00Z")
}

/// A date in the property's own type: `2025-02-08` for an `Edm.Date`,
/// else the DateTimeOffset of [`date_to_entity`].
pub fn date_for(date: Date, caps: FieldCaps) -> String {
    if caps.date_only {
        date.to_string()
    } else {
        date_to_entity(date)
    }
}

/// Decides the one thing this reconcile does. `final_statuses` are statuses
/// an order may not leave (default Invoiced, Canceled): asking to leave one
/// is refused here, without a request D365 would reject anyway. The
/// fields' capabilities are unknown: every field is taken as editable.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    names: FieldNames<'_>,
    final_statuses: &[SalesStatus],
) -> Action {
    plan_with(
        desired,
        observed,
        names,
        Capabilities::default(),
        final_statuses,
    )
}

/// [`plan`] with what `$metadata` says of the mapped fields: a change
/// needing a field that is not editable is `NotEditable` (never sent), and
/// a date goes out in its property's type.
pub fn plan_with(
    desired: &Desired,
    observed: &Observed,
    names: FieldNames<'_>,
    caps: Capabilities,
    final_statuses: &[SalesStatus],
) -> Action {
    let mut changes = Map::new();
    let status_differs = observed.sales_status != desired.sales_status.as_str();
    if status_differs {
        changes.insert(
            names.sales_status.into(),
            desired.sales_status.as_str().into(),
        );
    }
    if let Some(date) = desired.delivery_date
        && observed.delivery_date != Some(date)
    {
        let value = date_for(date, caps.delivery_date);
        changes.insert(names.delivery_date.into(), value.into());
    }
    if changes.is_empty() {
        return Action::InSync;
    }
    if desired.policy == Policy::Observe {
        let mut fields: Vec<String> = changes.keys().cloned().collect();
        fields.sort();
        return Action::Drifted { fields };
    }
    if status_differs
        && final_statuses
            .iter()
            .any(|f| f.as_str() == observed.sales_status)
    {
        return Action::InvalidTransition {
            from: observed.sales_status.clone(),
            to: desired.sales_status,
        };
    }
    let locked: Vec<String> = [
        (names.sales_status, caps.sales_status),
        (names.delivery_date, caps.delivery_date),
    ]
    .into_iter()
    .filter(|(name, field)| !field.editable && changes.contains_key(*name))
    .map(|(name, _)| name.to_owned())
    .collect();
    if !locked.is_empty() {
        return Action::NotEditable { fields: locked };
    }
    Action::Patch { changes }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
