//! `sales-order-operator export`: SalesOrderStatus manifests for orders
//! that already exist in D365, so a team can put them under Git without a
//! single write (policy `Observe`, values as D365 holds them now).
//!
//! Reads every page first (keys, status and date only: about 150 bytes an
//! order), then names and renders, because names depend on the whole set
//! (one company or several, collisions) and the output is sorted by name
//! for stable diffs.

pub mod manifest;
pub mod names;

use std::collections::HashMap;

use crate::api::{SalesOrderStatus, SalesStatus};
use crate::d365::{D365Error, OrderKey, OrderPages};
use crate::reconcile::FieldNames;
pub use manifest::{Row, Target, Unexportable};
pub use names::NameCollision;

/// What a read gave: rows to declare, rows that cannot be, and rows that
/// repeat an order (same key but for case, which F&O treats as one).
#[derive(Debug, Default)]
pub struct Collected {
    pub rows: Vec<Row>,
    pub skipped: Vec<Unexportable>,
    /// The repeats dropped, each with the key kept in its place.
    pub duplicates: Vec<(OrderKey, OrderKey)>,
    /// Pages and rows read, as progress reports them.
    pub pages: usize,
    pub read: usize,
}

/// The entity properties an export reads.
pub fn select<'a>(names: FieldNames<'a>) -> [&'a str; 4] {
    [
        "dataAreaId",
        "SalesOrderNumber",
        names.sales_status,
        names.delivery_date,
    ]
}

/// Namespace of D365's enum types, which qualifies enum literals in
/// `$filter` [doc].
pub const ENUM_NAMESPACE: &str = "Microsoft.Dynamics.DataEntities";

/// The `$filter` for orders in any of `statuses` (qualified literals of the
/// `SalesStatus` enum in an `or` chain: D365 has no `in` [doc]), and-ed
/// with the user's `filter`; `None` when both are empty.
pub fn with_statuses(
    status_field: &str,
    statuses: &[SalesStatus],
    filter: Option<&str>,
) -> Option<String> {
    let filter = filter.map(str::trim).filter(|f| !f.is_empty());
    if statuses.is_empty() {
        return filter.map(str::to_owned);
    }
    let chain: Vec<String> = statuses
        .iter()
        .map(|s| {
            format!(
                "{status_field} eq {ENUM_NAMESPACE}.SalesStatus'{}'",
                s.as_str()
            )
        })
        .collect();
    let chain = format!("({})", chain.join(" or "));
    Some(match filter {
        Some(filter) => format!("{chain} and ({filter})"),
        None => chain,
    })
}

/// Reads every page, calling `progress` after each with what was read so
/// far. Of rows repeating an order, the one whose exact key sorts first is
/// kept, so the result does not depend on the server's order.
pub async fn collect(
    pages: &mut OrderPages,
    names: FieldNames<'_>,
    mut progress: impl FnMut(&Collected),
) -> Result<Collected, D365Error> {
    let mut out = Collected::default();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    while let Some(page) = pages.next_page().await? {
        out.pages = pages.pages();
        out.read += page.len();
        for fields in &page {
            let row = match manifest::row(fields, names) {
                Ok(row) => row,
                Err(why) => {
                    out.skipped.push(why);
                    continue;
                }
            };
            add(&mut out, &mut index, row);
        }
        progress(&out);
    }
    Ok(out)
}

/// Adds `row`, or keeps the first-sorting of it and the order it repeats.
fn add(out: &mut Collected, index: &mut HashMap<(String, String), usize>, row: Row) {
    let identity = names::identity(&row.key);
    let Some(&at) = index.get(&identity) else {
        index.insert(identity, out.rows.len());
        out.rows.push(row);
        return;
    };
    let exact = |k: &OrderKey| (k.data_area_id.clone(), k.sales_order_number.clone());
    if exact(&row.key) < exact(&out.rows[at].key) {
        let dropped = std::mem::replace(&mut out.rows[at], row);
        out.duplicates.push((dropped.key, out.rows[at].key.clone()));
    } else {
        out.duplicates.push((row.key, out.rows[at].key.clone()));
    }
}

/// The manifests of `rows`, sorted by name.
pub fn manifests(rows: &[Row], target: &Target) -> Result<Vec<SalesOrderStatus>, NameCollision> {
    let keys: Vec<OrderKey> = rows.iter().map(|r| r.key.clone()).collect();
    let names = names::object_names(&keys)?;
    let mut named: Vec<(String, &Row)> = names.into_iter().zip(rows).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(named
        .iter()
        .map(|(name, row)| manifest::manifest(name, row, target))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Policy;

    #[test]
    fn statuses_become_qualified_literals_and_with_the_filter() {
        let q = "Microsoft.Dynamics.DataEntities.SalesStatus";
        let both = [SalesStatus::Backorder, SalesStatus::Delivered];
        assert_eq!(
            with_statuses(
                "SalesOrderStatus",
                &both,
                Some("dataAreaId eq 'usmf' or x eq 1")
            ),
            Some(format!(
                "(SalesOrderStatus eq {q}'Backorder' or SalesOrderStatus eq {q}'Delivered') \
                 and (dataAreaId eq 'usmf' or x eq 1)"
            ))
        );
        assert_eq!(
            with_statuses("Status", &[SalesStatus::Canceled], Some(" ")),
            Some(format!("(Status eq {q}'Canceled')"))
        );
        assert_eq!(
            with_statuses("S", &[], Some(" a eq 1 ")).as_deref(),
            Some("a eq 1")
        );
        assert_eq!(with_statuses("S", &[], None), None);
    }

    fn row(company: &str, number: &str) -> Row {
        Row {
            key: OrderKey::new(company, number),
            sales_status: SalesStatus::Backorder,
            delivery_date: None,
        }
    }

    #[test]
    fn repeats_by_case_keep_the_first_sorting_key_whatever_the_order() {
        for rows in [
            vec![
                row("usmf", "so-1"),
                row("USMF", "SO-1"),
                row("usmf", "SO-2"),
            ],
            vec![
                row("usmf", "SO-2"),
                row("USMF", "SO-1"),
                row("usmf", "so-1"),
            ],
        ] {
            let mut out = Collected::default();
            let mut index = HashMap::new();
            rows.into_iter().for_each(|r| add(&mut out, &mut index, r));
            let mut kept: Vec<String> = out.rows.iter().map(|r| r.key.to_string()).collect();
            kept.sort();
            assert_eq!(kept, ["USMF/SO-1", "usmf/SO-2"]);
            assert_eq!(out.duplicates.len(), 1);
            assert_eq!(out.duplicates[0].0.to_string(), "usmf/so-1");
        }
    }

    #[test]
    fn manifests_are_sorted_by_name() {
        let target = Target {
            connection: "c".into(),
            namespace: None,
            policy: Policy::Observe,
        };
        let got = manifests(&[row("usmf", "SO-2"), row("usmf", "SO-10")], &target).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["so-10", "so-2"]);
        assert!(got.iter().all(|o| o.spec.policy == Policy::Observe));
    }
}
