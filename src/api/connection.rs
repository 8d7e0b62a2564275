//! `D365Connection`: one D365 environment and how to reach it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SalesStatus;

/// One D365 F&O environment. Every order of a connection shares its HTTP
/// client, token cache and rate limiter, so the limits here are per
/// environment, not per order.
// kube's derive takes one `printcolumn` per column, which clippy reads as
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "d365.salesops.io",
    version = "v1alpha1",
    kind = "D365Connection",
    doc = "One Dynamics 365 F&O environment and how to reach it: its URL, the Entra ID credentials, the entity set and field mapping, and the request limits shared by every SalesOrderStatus that names it. The operator checks it after every change (token, then $metadata) and reports the result in status.conditions (Ready).",
    plural = "d365connections",
    namespaced,
    status = "D365ConnectionStatus",
    shortname = "d365c",
    category = "d365",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Entity", type_ = "string", json_path = ".spec.entitySet"),
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
        name = "Secret",
        type_ = "string",
        json_path = ".spec.auth.clientSecretRef.name",
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
pub struct D365ConnectionSpec {
    /// Environment URL, e.g. https://contoso.operations.dynamics.com; the
    /// OData root is `<url>/data`.
    #[schemars(
        length(min = 8, max = 2048),
        regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$")
    )]
    pub url: String,

    /// Entity set of sales order headers.
    #[serde(default = "default_entity_set")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$")
    )]
    pub entity_set: String,

    /// How the operator obtains its Entra ID token for this environment.
    pub auth: ConnectionAuth,

    /// Spec field -> entity field names.
    #[serde(default)]
    pub fields: FieldMapping,

    /// Statuses an order may not leave; a spec asking to leave one is
    /// reported InvalidTransition without a request.
    #[serde(default = "default_final_statuses")]
    pub final_statuses: Vec<SalesStatus>,

    /// Client-side limit shared by every order of this connection.
    #[serde(default = "default_rps")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_requests_per_second: u32,

    /// Most requests in flight at once to this environment (the ceiling
    /// when `adaptiveConcurrency` is on).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 512))]
    pub max_concurrent_requests: u32,

    /// Find the concurrency D365 sustains instead of always allowing
    /// `maxConcurrentRequests` (then the ceiling): more in flight while
    /// answers stay fast, fewer on a 429 or when they slow down.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adaptive_concurrency: bool,

    /// Generous by default: the first call after an AOS restart is slow.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub request_timeout_seconds: u32,

    /// Coalesce concurrent PATCHes into OData `$batch` calls (one changeset
    /// per order); absent = off, one PATCH per write. Worth it when many
    /// orders change at once and the service-protection limits bite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSpec>,
}

/// How PATCHes are batched. D365 allows 5,000 operations per batch but
/// suggests small ones, hence the lower cap here.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchSpec {
    /// Most PATCHes in one `$batch`.
    #[serde(default = "default_batch_operations")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_operations: u32,
    /// How long the first PATCH waits for others before the batch leaves.
    #[serde(default = "default_batch_window")]
    #[schemars(range(min = 1, max = 5000))]
    pub window_milliseconds: u32,
}

impl Default for BatchSpec {
    fn default() -> Self {
        Self {
            max_operations: default_batch_operations(),
            window_milliseconds: default_batch_window(),
        }
    }
}

/// Entra ID client-credentials settings. Exactly one credential: a client
/// secret, a certificate, or workload identity (no Secret at all).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(ONE_CREDENTIAL).message("set exactly one of clientSecretRef, clientCertificateRef and workloadIdentity"))]
pub struct ConnectionAuth {
    /// Entra ID tenant (directory) id or domain of the app registration.
    #[schemars(length(min = 1, max = 256))]
    pub tenant_id: String,
    /// Application (client) id of the app registration D365 maps to a user.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// A client secret in a Secret labelled `d365.salesops.io/credentials:
    /// "true"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<ClientSecretRef>,
    /// A certificate registered on the app: the operator signs each token
    /// request with its private key, which never leaves the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<ClientCertificateRef>,
    /// The operator's own projected ServiceAccount token, trusted by the
    /// app through a federated credential (AKS workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// Token authority; override for sovereign clouds or the emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"))]
    pub authority_url: Option<String>,
    /// Token scope; defaults to `<url>/.default`. Must be one
    /// `<resource>/.default` on `url`'s own host and port: the token is sent
    /// to `url`, so a scope for another host is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// CEL: exactly one of the three credentials is set.
const ONE_CREDENTIAL: &str = "(has(self.clientSecretRef) ? 1 : 0) + (has(self.clientCertificateRef) ? 1 : 0) + (has(self.workloadIdentity) ? 1 : 0) == 1";

impl ConnectionAuth {
    /// The Secret the credential is read from; none for workload identity.
    pub fn credentials_secret(&self) -> Option<&str> {
        match (&self.client_secret_ref, &self.client_certificate_ref) {
            (Some(secret), _) => Some(&secret.name),
            (None, Some(certificate)) => Some(&certificate.name),
            (None, None) => None,
        }
    }
}

/// A key of a Secret in the connection's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClientSecretRef {
    /// Name of the Secret (labelled `d365.salesops.io/credentials: "true"`).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the Secret's data that holds the client secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A certificate and its RSA private key in one Secret of the connection's
/// namespace, by default as a `kubernetes.io/tls` Secret (cert-manager's
/// output) holds them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificateRef {
    /// Name of the Secret (labelled `d365.salesops.io/credentials: "true"`).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// PEM certificate (a chain may follow it).
    #[serde(default = "default_certificate_key")]
    #[schemars(length(min = 1, max = 253))]
    pub certificate_key: String,
    /// PEM RSA private key, PKCS#8 or PKCS#1.
    #[serde(default = "default_private_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub private_key_key: String,
}

/// Workload identity: the operator presents the ServiceAccount token
/// projected into its pod (the chart's `workloadIdentity` values, or the
/// azure-workload-identity webhook) as a federated assertion. Which file is
/// the operator's setting (`--workload-identity-token-file`), never the
/// connection's: a connection naming a file could make the operator send
/// any file it can read.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadIdentity {}

/// Which entity fields the spec's fields map to: the real entity has no
/// `DeliveryDate`, and whether `SalesOrderStatus` is writable is unverified,
/// so both are configurable.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// Entity field that `spec.salesStatus` of an order is written to.
    #[serde(default = "default_status_field")]
    #[schemars(length(min = 1, max = 128))]
    pub sales_status: String,
    /// Entity field that `spec.deliveryDate` of an order is written to.
    #[serde(default = "default_date_field")]
    #[schemars(length(min = 1, max = 128))]
    pub delivery_date: String,
}

impl Default for FieldMapping {
    fn default() -> Self {
        Self {
            sales_status: default_status_field(),
            delivery_date: default_date_field(),
        }
    }
}

/// Connection health as last seen by the operator. The API server defaults
/// it to `observedGeneration: 0` (no object has generation 0), so a
/// connection not yet checked reads InProgress to kstatus instead of
/// Current (see docs/operations.md "GitOps health").
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct D365ConnectionStatus {
    /// metadata.generation of the spec the last check used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the credentials obtained a token and the mapped fields are
    /// usable; its reason says why not (see docs/operations.md). Stalled
    /// when a human must act, Reconciling while a check is under way.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the service's `$metadata` says of the entity set and the
    /// mapped fields, from the last check that could read it; absent while
    /// unknown (never read, or unreadable: see the Ready reason).
    #[serde(default)]
    pub entity: Option<EntitySummary>,
}

/// The entity set as `$metadata` describes it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EntitySummary {
    /// The entity set checked (`spec.entitySet`).
    pub entity_set: String,
    /// Qualified entity type, e.g. `Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2`.
    pub entity_type: String,
    /// Key properties of the entity type, e.g. dataAreaId, SalesOrderNumber.
    pub key: Vec<String>,
    /// False when the set is annotated not updatable.
    pub updatable: bool,
    /// One entry per `spec.fields` mapping.
    pub fields: Vec<MappedField>,
}

/// One `spec.fields` mapping and what the entity type says of its field.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MappedField {
    /// The spec field: `salesStatus` or `deliveryDate`.
    pub mapping: String,
    /// The entity field it maps to.
    pub name: String,
    /// Whether the entity type has it.
    pub found: bool,
    /// EDM type, e.g. `Edm.Date`, `Edm.DateTimeOffset`, an enum type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub edm_type: Option<String>,
    /// Whether `$metadata` lets OData write it (absent when not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editable: Option<bool>,
}

fn default_certificate_key() -> String {
    "tls.crt".into()
}
fn default_private_key_key() -> String {
    "tls.key".into()
}
fn default_entity_set() -> String {
    "SalesOrderHeadersV2".into()
}
fn default_status_field() -> String {
    "SalesOrderStatus".into()
}
fn default_date_field() -> String {
    "ConfirmedReceiptDate".into()
}
fn default_final_statuses() -> Vec<SalesStatus> {
    vec![SalesStatus::Invoiced, SalesStatus::Canceled]
}
fn default_rps() -> u32 {
    20
}
fn default_concurrency() -> u32 {
    8
}
fn default_timeout() -> u32 {
    30
}
fn default_batch_operations() -> u32 {
    100
}
fn default_batch_window() -> u32 {
    20
}
