//! The `SalesOrderHeaderV2` entity: its fields, their kinds, defaults and
//! JSON shape, and the weak ETag that changes on every write [obs].

use base64::Engine;
use serde_json::{Map, Value};
use thiserror::Error;

/// Entity set name in URLs [doc].
pub const ENTITY_SET: &str = "SalesOrderHeadersV2";
/// Qualified entity type, used in error messages and `@odata.context`.
pub const ENTITY_TYPE: &str = "Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2";
/// Unset DateTimeOffset value: D365 never answers null for dates [obs].
pub const UNSET_DATE: &str = "1900-01-01T12:00:00Z";
/// Namespace of enum literals in `$filter` [doc].
pub const ENUM_NAMESPACE: &str = "Microsoft.Dynamics.DataEntities";

/// Members of enum `SalesStatus` [doc].
pub const SALES_STATUS: &[&str] = &["None", "Backorder", "Delivered", "Invoiced", "Canceled"];
const NO_YES: &[&str] = &["No", "Yes"];

/// How a field's value is validated and compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Str,
    /// Enum type name and members; JSON holds the plain member name [doc].
    Enum(&'static str, &'static [&'static str]),
    /// DateTimeOffset string [obs].
    Date,
    Number,
}

/// One field of the entity type with its default value.
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
}

const fn f(name: &'static str, kind: Kind, default: &'static str) -> Field {
    Field {
        name,
        kind,
        default,
    }
}

/// The fields of `SalesOrderHeaderV2` the emulator knows, in answer order.
pub const FIELDS: &[Field] = &[
    f("dataAreaId", Kind::Str, "usmf"),
    f("SalesOrderNumber", Kind::Str, ""),
    f("SalesOrderName", Kind::Str, ""),
    f(
        "SalesOrderStatus",
        Kind::Enum("SalesStatus", SALES_STATUS),
        "Backorder",
    ),
    f("SalesOrderProcessingStatus", Kind::Str, "None"),
    f("OrderingCustomerAccountNumber", Kind::Str, "US-001"),
    f("InvoiceCustomerAccountNumber", Kind::Str, "US-001"),
    f("CurrencyCode", Kind::Str, "USD"),
    f("CustomerRequisitionNumber", Kind::Str, ""),
    f("CustomersOrderReference", Kind::Str, ""),
    f("RequestedShippingDate", Kind::Date, UNSET_DATE),
    f("ConfirmedShippingDate", Kind::Date, UNSET_DATE),
    f("RequestedReceiptDate", Kind::Date, UNSET_DATE),
    f("ConfirmedReceiptDate", Kind::Date, UNSET_DATE),
    f("DeliveryModeCode", Kind::Str, "10"),
    f("DeliveryTermsCode", Kind::Str, "FOB"),
    f("PaymentTermsName", Kind::Str, "Net30"),
    f("DefaultShippingSiteId", Kind::Str, "1"),
    f("DefaultShippingWarehouseId", Kind::Str, "11"),
    f("LanguageId", Kind::Str, "en-us"),
    f(
        "IsSalesProcessingStopped",
        Kind::Enum("NoYes", NO_YES),
        "No",
    ),
    f("FixedExchangeRate", Kind::Number, "0"),
];

/// Index of `dataAreaId` in [`FIELDS`].
pub const AREA: usize = 0;
/// Index of `SalesOrderNumber` in [`FIELDS`].
pub const NUMBER: usize = 1;
/// Index of `SalesOrderStatus` in [`FIELDS`].
pub const STATUS: usize = 3;

/// Whether `name` is one of the two key fields [doc].
pub fn is_key_field(name: &str) -> bool {
    name == FIELDS[AREA].name || name == FIELDS[NUMBER].name
}

/// Index of a field by its case-sensitive name [doc].
pub fn field_index(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| f.name == name)
}

#[derive(Debug, Error, PartialEq)]
pub enum EntityError {
    #[error(
        "The property '{0}' does not exist on type '{ENTITY_TYPE}'. Make sure to only use property names that are defined by the type."
    )]
    UnknownProperty(String),
    #[error("Key property '{0}' of type '{ENTITY_TYPE}' cannot be modified.")]
    KeyProperty(String),
    #[error(
        "Cannot convert the literal '{value}' to the expected type '{expected}' of property '{field}'."
    )]
    BadValue {
        field: String,
        value: String,
        expected: String,
    },
    #[error("The request body must be a JSON object.")]
    NotAnObject,
    #[error("An order needs a non-empty SalesOrderNumber.")]
    MissingNumber,
}

/// Checks a value against a field's kind; returns the stored form.
pub fn coerce(idx: usize, v: &Value) -> Result<Value, EntityError> {
    let field = &FIELDS[idx];
    let bad = |expected: &str| EntityError::BadValue {
        field: field.name.to_string(),
        value: match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        expected: expected.to_string(),
    };
    match (field.kind, v) {
        (Kind::Str, Value::String(_)) => Ok(v.clone()),
        (Kind::Str, _) => Err(bad("Edm.String")),
        (Kind::Enum(ty, members), Value::String(s)) => members
            .iter()
            .find(|m| m.eq_ignore_ascii_case(s))
            .map(|m| Value::String(m.to_string()))
            .ok_or_else(|| bad(&format!("{ENUM_NAMESPACE}.{ty}"))),
        (Kind::Enum(ty, _), _) => Err(bad(&format!("{ENUM_NAMESPACE}.{ty}"))),
        (Kind::Date, Value::String(s)) => s
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| Value::String(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
            // F&O's answer names the type, not the parser's reason.
            .ok_or_else(|| bad("Edm.DateTimeOffset")),
        (Kind::Date, _) => Err(bad("Edm.DateTimeOffset")),
        (Kind::Number, Value::Number(_)) => Ok(v.clone()),
        (Kind::Number, _) => Err(bad("Edm.Decimal")),
    }
}

/// Default value of a field as JSON.
fn default_value(idx: usize) -> Value {
    let field = &FIELDS[idx];
    match field.kind {
        Kind::Number => Value::from(field.default.parse::<f64>().unwrap_or(0.0)),
        _ => Value::String(field.default.to_string()),
    }
}

/// One stored order: values aligned with [`FIELDS`] (compact: no per-row
/// key strings), extra fields from seeds kept as given, and its ETag.
#[derive(Clone, Debug)]
pub struct Order {
    pub values: Box<[Value]>,
    pub extra: Option<Box<Map<String, Value>>>,
    /// Record id, part of the ETag's payload like D365's RecId.
    pub rec_id: u64,
    pub etag: String,
}

impl Order {
    /// Builds an order from D365-named JSON; missing fields get defaults,
    /// `dataAreaId` is stored lower-case [obs]. Annotations are ignored.
    pub fn from_json(entity: &Value) -> Result<Order, EntityError> {
        let obj = entity.as_object().ok_or(EntityError::NotAnObject)?;
        let mut values: Vec<Value> = (0..FIELDS.len()).map(default_value).collect();
        let mut extra = Map::new();
        for (k, v) in obj {
            if k.starts_with('@') || k.contains("@odata.") {
                continue;
            }
            match field_index(k) {
                Some(i) => values[i] = coerce(i, v)?,
                None => {
                    extra.insert(k.clone(), v.clone());
                }
            }
        }
        let area = values[AREA].as_str().unwrap_or_default().to_lowercase();
        values[AREA] = Value::String(area);
        if values[NUMBER].as_str().unwrap_or_default().is_empty() {
            return Err(EntityError::MissingNumber);
        }
        Ok(Order {
            values: values.into_boxed_slice(),
            extra: (!extra.is_empty()).then(|| Box::new(extra)),
            rec_id: 0,
            etag: String::new(),
        })
    }

    pub fn area(&self) -> &str {
        self.values[AREA].as_str().unwrap_or_default()
    }

    pub fn number(&self) -> &str {
        self.values[NUMBER].as_str().unwrap_or_default()
    }

    pub fn status(&self) -> &str {
        self.values[STATUS].as_str().unwrap_or_default()
    }

    /// Value of a known or extra field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match field_index(name) {
            Some(i) => Some(&self.values[i]),
            None => self.extra.as_ref().and_then(|e| e.get(name)),
        }
    }

    /// Whether `name` is a property of this record (type field or seed extra).
    pub fn has_property(&self, name: &str) -> bool {
        field_index(name).is_some() || self.extra.as_ref().is_some_and(|e| e.contains_key(name))
    }

    /// Validates a PATCH body: only existing, non-key properties of the
    /// right type [doc]. Returns the coerced fields to write.
    pub fn validate_patch(
        &self,
        body: &Map<String, Value>,
    ) -> Result<Map<String, Value>, EntityError> {
        let mut out = Map::new();
        for (k, v) in body {
            if k.starts_with('@') || k.contains("@odata.") {
                continue;
            }
            if is_key_field(k) {
                return Err(EntityError::KeyProperty(k.clone()));
            }
            match field_index(k) {
                Some(i) => {
                    out.insert(k.clone(), coerce(i, v)?);
                }
                None if self.has_property(k) => {
                    out.insert(k.clone(), v.clone());
                }
                None => return Err(EntityError::UnknownProperty(k.clone())),
            }
        }
        Ok(out)
    }

    /// Writes already-validated fields; the caller sets the new ETag.
    pub fn apply(&mut self, fields: &Map<String, Value>) {
        for (k, v) in fields {
            match field_index(k) {
                Some(i) => self.values[i] = v.clone(),
                None => {
                    self.extra
                        .get_or_insert_with(Default::default)
                        .insert(k.clone(), v.clone());
                }
            }
        }
    }

    /// The entity as a JSON object (`@odata.etag` and every property),
    /// for the admin API and the library handle; rendered by [`EntityView`].
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self.view(None, None)) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// This entity as an answer: `select` limits the properties [doc],
    /// `context` is the `@odata.context` of a single-entity answer.
    pub fn view<'a>(
        &'a self,
        select: Option<&'a [String]>,
        context: Option<&'a str>,
    ) -> EntityView<'a> {
        EntityView {
            order: self,
            select,
            context,
            dates: &[],
        }
    }
}

/// The one JSON rendering of an entity: `@odata.context` (single-entity
/// answers), `@odata.etag`, then the properties in the type's order or
/// the `$select` list. Serializes straight from the row without building
/// a map, the hot path of single GETs and pages.
pub struct EntityView<'a> {
    order: &'a Order,
    select: Option<&'a [String]>,
    context: Option<&'a str>,
    /// `dateOnlyFields`: shown as their date part, as an `Edm.Date` is.
    dates: &'a [String],
}

impl<'a> EntityView<'a> {
    /// This view with `dates` shown as `YYYY-MM-DD` (`dateOnlyFields`).
    pub fn dated(self, dates: &'a [String]) -> Self {
        Self { dates, ..self }
    }

    /// A value as shown: a date-only field's date part.
    fn shown<'v>(&self, name: &str, value: &'v Value) -> std::borrow::Cow<'v, Value> {
        match value {
            Value::String(s) if s.len() > 10 && self.dates.iter().any(|d| d == name) => {
                std::borrow::Cow::Owned(Value::String(s[..10].to_owned()))
            }
            _ => std::borrow::Cow::Borrowed(value),
        }
    }
}

impl serde::Serialize for EntityView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let o = self.order;
        let mut m = s.serialize_map(None)?;
        if let Some(c) = self.context {
            m.serialize_entry("@odata.context", c)?;
        }
        m.serialize_entry("@odata.etag", &o.etag)?;
        match self.select {
            Some(names) => {
                for n in names {
                    if let Some(v) = o.get(n) {
                        m.serialize_entry(n, &self.shown(n, v))?;
                    }
                }
            }
            None => {
                for (i, field) in FIELDS.iter().enumerate() {
                    m.serialize_entry(field.name, &self.shown(field.name, &o.values[i]))?;
                }
                if let Some(extra) = &o.extra {
                    for (k, v) in extra.iter() {
                        m.serialize_entry(k, v)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// Weak, opaque ETag whose base64 holds a record id and version, the shape
/// D365 answers [obs]. `version` is global and never reused, so every write
/// (even after a reset) yields a new ETag.
pub fn make_etag(rec_id: u64, version: u64) -> String {
    let raw = format!("'{version},{rec_id};0");
    format!(
        "W/\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Whether an `If-Match` header value matches the current ETag: `*` matches
/// anything [spec]; a list matches if any member does; the weak prefix is
/// ignored, since D365's ETags are all weak [obs].
pub fn if_match_matches(header: &str, current: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_string();
    let cur = strip(current);
    header
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_lowercase_area() {
        let o = Order::from_json(&json!({"dataAreaId":"USMF","SalesOrderNumber":"SO-1"})).unwrap();
        assert_eq!(o.area(), "usmf");
        assert_eq!(o.get("ConfirmedReceiptDate").unwrap(), UNSET_DATE);
    }

    #[test]
    fn etag_match() {
        let e = make_etag(1, 2);
        assert!(e.starts_with("W/\""));
        assert!(if_match_matches(&e, &e));
        assert!(if_match_matches("*", &e));
        assert!(!if_match_matches(&make_etag(1, 3), &e));
    }
}
