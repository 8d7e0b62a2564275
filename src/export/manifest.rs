//! One exported order: a D365 row read into the spec's terms, and the
//! SalesOrderStatus manifest that declares exactly what D365 holds, so
//! applying it changes nothing.

use jiff::civil::Date;
use kube::api::ObjectMeta;
use serde_json::{Map, Value};

use crate::api::{ConnectionRef, Policy, SalesOrderStatus, SalesOrderStatusSpec, SalesStatus};
use crate::d365::OrderKey;
use crate::reconcile::{FieldNames, Observed, PlanError};

/// One order as D365 holds it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: OrderKey,
    pub sales_status: SalesStatus,
    /// `None` when D365 has no date (1900-01-01, null or absent).
    pub delivery_date: Option<Date>,
}

/// A row no manifest can declare; skipped with this message on stderr.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Unexportable {
    #[error("a row without dataAreaId and SalesOrderNumber strings")]
    NoKey,
    /// The CRD would refuse the key (dataAreaId 1–4 letters or digits;
    /// salesOrderNumber 1–20 characters, no control characters).
    #[error("order {key}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("order {key}: {source}")]
    Unreadable {
        key: String,
        #[source]
        source: PlanError,
    },
    /// `None` (not yet confirmed) and unknown values are no spec status.
    #[error(
        "order {key}: status {status:?} cannot be declared (spec.salesStatus is one of Backorder, Delivered, Invoiced, Canceled)"
    )]
    Status { key: String, status: String },
}

/// Where and how the manifests declare the orders.
#[derive(Debug, Clone)]
pub struct Target {
    /// `spec.connectionRef.name`.
    pub connection: String,
    /// `metadata.namespace`, when given (else `kubectl` or kustomize picks).
    pub namespace: Option<String>,
    pub policy: Policy,
}

/// The row's key, status and date (by the connection's field mapping).
pub fn row(fields: &Map<String, Value>, names: FieldNames<'_>) -> Result<Row, Unexportable> {
    let text = |f: &str| fields.get(f).and_then(Value::as_str);
    let (Some(company), Some(number)) = (text("dataAreaId"), text("SalesOrderNumber")) else {
        return Err(Unexportable::NoKey);
    };
    let key = OrderKey::new(company, number);
    if let Some(why) = key_problem(&key) {
        return Err(Unexportable::BadKey {
            key: key.to_string(),
            why,
        });
    }
    let observed = Observed::from_entity(fields, names, (company, number)).map_err(|source| {
        Unexportable::Unreadable {
            key: key.to_string(),
            source,
        }
    })?;
    let sales_status = serde_json::from_value(Value::String(observed.sales_status.clone()))
        .map_err(|_not_a_spec_status| Unexportable::Status {
            key: key.to_string(),
            status: observed.sales_status,
        })?;
    Ok(Row {
        key,
        sales_status,
        delivery_date: observed.delivery_date,
    })
}

/// What the CRD's schema would refuse in a key, so `kubectl apply` of the
/// output never fails half-way.
fn key_problem(key: &OrderKey) -> Option<&'static str> {
    let company = &key.data_area_id;
    let number = &key.sales_order_number;
    if !(1..=4).contains(&company.len()) || !company.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Some("dataAreaId is not 1-4 letters or digits");
    }
    if !(1..=20).contains(&number.chars().count()) {
        return Some("salesOrderNumber is not 1-20 characters");
    }
    if number.chars().any(char::is_control) {
        return Some("salesOrderNumber has control characters");
    }
    None
}

/// The manifest declaring `row` as it is, named `name`.
pub fn manifest(name: &str, row: &Row, target: &Target) -> SalesOrderStatus {
    SalesOrderStatus {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: target.namespace.clone(),
            ..ObjectMeta::default()
        },
        spec: SalesOrderStatusSpec {
            connection_ref: ConnectionRef {
                name: target.connection.clone(),
            },
            data_area_id: row.key.data_area_id.clone(),
            sales_order_number: row.key.sales_order_number.clone(),
            sales_status: row.sales_status,
            delivery_date: row.delivery_date.map(|d| d.to_string()),
            policy: target.policy,
            suspend: false,
        },
        status: None,
    }
}

/// A YAML stream, one `---`-separated document per object.
pub fn render(objects: &[SalesOrderStatus]) -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
