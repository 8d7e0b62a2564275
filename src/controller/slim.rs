//! What the caches keep of each watched object: all of it but what the
//! operator never reads. `managedFields` (one entry per writer, rewritten
//! on each status write) and kubectl's last-applied annotation (a second
//! copy of the object; for a Secret, its data) were most of a cached
//! order's memory.

use kube::Resource;

/// The annotation `kubectl apply` leaves: the whole applied object again.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops `managedFields` and the last-applied annotation, on the way from
/// the watch into the reflector store.
pub fn slim<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::core::PartialObjectMeta;

    use super::*;
    use crate::api::{RECONCILE_REQUESTED_AT, SalesOrderStatus};

    fn managed() -> Option<Vec<ManagedFieldsEntry>> {
        Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            ..ManagedFieldsEntry::default()
        }])
    }

    #[test]
    fn an_order_loses_managed_fields_and_last_applied_but_keeps_what_is_read() {
        let mut order = SalesOrderStatus::test(1);
        order.metadata.managed_fields = managed();
        let annotations = order.metadata.annotations.get_or_insert_default();
        annotations.insert(LAST_APPLIED.into(), "{\"spec\":{}}".into());
        annotations.insert(RECONCILE_REQUESTED_AT.into(), "now".into());
        let spec = order.spec.clone();
        slim(&mut order);
        assert_eq!(order.metadata.managed_fields, None);
        let kept = order.metadata.annotations.as_ref().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[RECONCILE_REQUESTED_AT], "now");
        assert_eq!(order.spec, spec);
        assert_eq!(order.metadata.name.as_deref(), Some("so-2025-0001"));
    }

    #[test]
    fn a_secrets_metadata_loses_its_applied_copy_and_empty_annotations_go() {
        let mut secret = PartialObjectMeta::<Secret>::default();
        secret.metadata.managed_fields = managed();
        secret.metadata.annotations.get_or_insert_default().insert(
            LAST_APPLIED.into(),
            "{\"data\":{\"s\":\"c2VjcmV0\"}}".into(),
        );
        slim(&mut secret);
        assert_eq!(secret.metadata.managed_fields, None);
        assert_eq!(secret.metadata.annotations, None);
    }
}
