//! `SalesOrderStatus`: the desired status of one D365 sales order.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of one sales order. The identity fields (connectionRef,
/// dataAreaId, salesOrderNumber) are immutable: a different order is a
/// different object, so ownership and history never jump between orders.
// kube's derive takes one `printcolumn` per column, which clippy reads as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "d365.salesops.io",
    version = "v1alpha1",
    kind = "SalesOrderStatus",
    doc = "The desired status (and delivery date) of one Dynamics 365 F&O sales order. The operator reads the order over OData, PATCHes it with If-Match when it differs (policy Enforce) or only reports the drift (policy Observe), and records the outcome in status.conditions (Ready, Reconciling, Stalled).",
    plural = "salesorderstatuses",
    namespaced,
    status = "SalesOrderStatusStatus",
    shortname = "sos",
    category = "d365",
    printcolumn(name = "Order", type_ = "string", json_path = ".spec.salesOrderNumber"),
    printcolumn(name = "Company", type_ = "string", json_path = ".spec.dataAreaId"),
    printcolumn(name = "Desired", type_ = "string", json_path = ".spec.salesStatus"),
    printcolumn(
        name = "Current",
        type_ = "string",
        json_path = ".status.observed.salesStatus"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".spec.policy",
        priority = 1
    ),
    printcolumn(
        name = "Conflicts",
        type_ = "integer",
        json_path = ".status.conflicts",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SalesOrderStatusSpec {
    /// The D365Connection (same namespace) that reaches the environment.
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionRef is immutable: create a new object for another connection"))]
    pub connection_ref: ConnectionRef,

    /// Legal entity (company), part of the OData key. D365 answers it lower-case.
    #[schemars(length(min = 1, max = 4), regex(pattern = r"^[A-Za-z0-9]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("dataAreaId is immutable: a different order is a different object"))]
    pub data_area_id: String,

    /// Sales order number (SalesId), the other key part.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(
        validation = Rule::new("self == oldSelf").message("salesOrderNumber is immutable: a different order is a different object"),
        validation = Rule::new(NO_CONTROL_CHARACTERS).message("salesOrderNumber must not contain control characters")
    )]
    pub sales_order_number: String,

    /// Desired order status.
    pub sales_status: SalesStatus,

    /// Desired delivery date (RFC 3339 full-date), written to the entity's
    /// date field chosen by the connection (ConfirmedReceiptDate by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        extend("format" = "date"),
        regex(pattern = r"^\d{4}-\d{2}-\d{2}$"),
        length(max = 10)
    )]
    // With `format: date` CEL sees a timestamp (that day at 00:00 UTC).
    #[x_kube(validation = Rule::new("self > timestamp('1900-01-01T00:00:00Z')").message("deliveryDate must be after 1900-01-01, the day D365 stores as \"no date\""))]
    pub delivery_date: Option<String>,

    /// Enforce writes D365 to match; Observe only reports drift.
    #[serde(default)]
    pub policy: Policy,

    /// Stop all D365 traffic for this order until set back to false.
    #[serde(default)]
    pub suspend: bool,
}

/// Reference to a D365Connection in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionRef {
    /// Name of the D365Connection.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(NO_CONTROL_CHARACTERS).message("connectionRef.name must not contain control characters"))]
    pub name: String,
}

/// CEL: no C0 or C1 control character (nor DEL) anywhere in the string.
/// Identity fields end up in URLs, logs and condition messages, where such
/// characters hide or forge text. (dataAreaId's pattern already refuses them.)
const NO_CONTROL_CHARACTERS: &str = r"!self.matches('[\\x00-\\x1f\\x7f-\\x9f]')";

/// Values of D365's `SalesStatus` enum a spec may ask for (`None` is D365's
/// "not yet" state, never a target).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SalesStatus {
    Backorder,
    Delivered,
    Invoiced,
    Canceled,
}

impl SalesStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backorder => "Backorder",
            Self::Delivered => "Delivered",
            Self::Invoiced => "Invoiced",
            Self::Canceled => "Canceled",
        }
    }
}

/// Whether the operator may write to D365.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum Policy {
    #[default]
    Enforce,
    Observe,
}

/// Observed state, kstatus-compatible. The API server defaults it to
/// `observedGeneration: 0` (no object has generation 0), so an order the
/// operator has not seen yet reads InProgress to kstatus instead of
/// Current (see docs/operations.md "GitOps health").
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct SalesOrderStatusStatus {
    /// metadata.generation of the spec the operator last acted on; the
    /// conditions describe that generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What D365 held at the last read, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedOrder>,
    /// The last write the operator made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<LastUpdate>,
    /// Conflicts (409/412) seen for the current generation.
    #[serde(default)]
    pub conflicts: u32,
    /// Ready (D365 holds the spec), Reconciling (still trying) and Stalled
    /// (needs a human); the reason says why (see docs/operations.md).
    /// Reconciling and Stalled are present only while True.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// D365's values at the last read.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedOrder {
    /// The order's status field as D365 answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_status: Option<String>,
    /// The mapped date field as D365 answered it (a full date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_date: Option<String>,
    /// Display only: every write GETs afresh and uses the ETag of that GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The last PATCH D365 accepted (2xx).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastUpdate {
    /// RFC 3339 time of the PATCH.
    pub time: String,
    /// The If-Match the PATCH carried.
    pub from_etag: String,
    /// The ETag after the write, when D365 told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_etag: Option<String>,
    /// Reconcile attempts it took (1 + conflicts and transient failures).
    pub attempts: u32,
    /// Entity fields written.
    #[serde(default)]
    pub fields: Vec<String>,
    /// metadata.generation of the spec written: a later read that still
    /// differs proves the write was not applied only for the same spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Times this change was sent again because D365 accepted it without
    /// applying it (at most once, then Stalled/NotApplied).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resends: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SalesOrderStatus {
    /// The condition of that type, if any.
    pub fn condition(&self, kind: super::ConditionType) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == kind.as_str())
    }

    /// The Ready condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.condition(super::ConditionType::Ready)
    }
}
