//! Custom resources of the `d365.salesops.io` group: what users declare in Git.

mod conditions;
mod connection;
mod order;

pub use conditions::{ConditionType, Reason};
pub use connection::{
    BatchSpec, ClientCertificateRef, ClientSecretRef, ConnectionAuth, D365Connection,
    D365ConnectionSpec, D365ConnectionStatus, EntitySummary, FieldMapping, MappedField,
    WorkloadIdentity,
};
pub use order::{
    ConnectionRef, LastUpdate, ObservedOrder, Policy, SalesOrderStatus, SalesOrderStatusSpec,
    SalesOrderStatusStatus, SalesStatus,
};

/// API group of every resource the operator serves.
pub const GROUP: &str = "d365.salesops.io";

/// Annotation whose value change asks for an immediate reconcile (like Flux's
/// `reconcile.fluxcd.io/requestedAt`), without editing the spec.
pub const RECONCILE_REQUESTED_AT: &str = "d365.salesops.io/reconcile-requested-at";

/// Label a Secret must carry (value `"true"`) for the operator to read it:
/// the Secret watch selects on it, so no other Secret is cached or read.
pub const CREDENTIALS_LABEL: &str = "d365.salesops.io/credentials";

/// The [`CREDENTIALS_LABEL`] selector, as the Secret watch uses it.
pub const CREDENTIALS_SELECTOR: &str = "d365.salesops.io/credentials=true";

/// Both CRDs, in the order `kubectl apply` wants them.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![D365Connection::crd(), SalesOrderStatus::crd()]
}

/// The CRDs as one multi-document YAML stream, as `crds/` stores it.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
