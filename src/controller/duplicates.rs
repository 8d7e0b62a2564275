//! One writer per order: when two objects name the same D365 order, the
//! older one keeps it and the newer goes Stalled/DuplicateOrder.

use crate::api::SalesOrderStatus;
use kube::ResourceExt;

/// Identity of the D365 order an object manages. `dataAreaId` is
/// case-insensitive in D365 [obs], so it is folded here too.
pub fn order_identity(o: &SalesOrderStatus) -> (String, String, String, String) {
    (
        o.namespace().unwrap_or_default(),
        o.spec.connection_ref.name.clone(),
        o.spec.data_area_id.to_ascii_lowercase(),
        o.spec.sales_order_number.clone(),
    )
}

/// The object that owns `order`'s D365 order among `all`: the oldest by
/// creation time, ties broken by name. `None` when `order` owns it.
pub fn owner_other_than<'a>(
    order: &SalesOrderStatus,
    all: impl IntoIterator<Item = &'a SalesOrderStatus>,
) -> Option<String> {
    let id = order_identity(order);
    let rank = |o: &SalesOrderStatus| {
        (
            o.metadata.creation_timestamp.clone().map(|t| t.0),
            o.name_any(),
        )
    };
    let owner = all
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none() && order_identity(o) == id)
        .min_by_key(|o| rank(o))?;
    (owner.name_any() != order.name_any()).then(|| owner.name_any())
}

/// Objects other than `order` that name the same D365 order: they must be
/// re-checked when `order` changes or goes away.
pub fn duplicates_of<'a>(
    order: &SalesOrderStatus,
    all: impl IntoIterator<Item = &'a SalesOrderStatus>,
) -> Vec<&'a SalesOrderStatus> {
    let id = order_identity(order);
    all.into_iter()
        .filter(|o| o.name_any() != order.name_any() && order_identity(o) == id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConnectionRef, Policy, SalesOrderStatusSpec, SalesStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn order(name: &str, company: &str, number: &str, created: i64) -> SalesOrderStatus {
        let mut o = SalesOrderStatus::new(
            name,
            SalesOrderStatusSpec {
                connection_ref: ConnectionRef {
                    name: "usmf".into(),
                },
                data_area_id: company.into(),
                sales_order_number: number.into(),
                sales_status: SalesStatus::Delivered,
                delivery_date: None,
                policy: Policy::Enforce,
                suspend: false,
            },
        );
        o.metadata.namespace = Some("orders".into());
        o.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        o
    }

    #[test]
    fn oldest_object_owns_the_order() {
        let old = order("b-old", "USMF", "SO-1", 100);
        let new = order("a-new", "usmf", "SO-1", 200);
        let other = order("c", "usmf", "SO-2", 50);
        let all = [old.clone(), new.clone(), other.clone()];
        assert_eq!(owner_other_than(&old, &all), None);
        assert_eq!(
            owner_other_than(&new, &all),
            Some("b-old".into()),
            "dataAreaId folds case"
        );
        assert_eq!(owner_other_than(&other, &all), None);
        assert_eq!(duplicates_of(&old, &all).len(), 1);
    }

    #[test]
    fn ties_break_by_name_and_deleting_objects_do_not_own() {
        let a = order("a", "usmf", "SO-1", 100);
        let b = order("b", "usmf", "SO-1", 100);
        assert_eq!(
            owner_other_than(&b, &[a.clone(), b.clone()]),
            Some("a".into())
        );
        let mut a_gone = a.clone();
        a_gone.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::from_second(300).unwrap()));
        assert_eq!(owner_other_than(&b, &[a_gone, b.clone()]), None);
    }
}
