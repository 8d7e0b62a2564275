//! End to end: the connection check reads `$metadata` (issue 11 item 1).
//! A read-only `SalesOrderStatus` makes the connection FieldNotEditable and
//! stalls the orders that need it without a single PATCH; an `Edm.Date`
//! field is written as a date; an unreadable `$metadata` leaves the
//! connection Ready and its orders working.

use d365_emulator::Faults;
use kube::api::{Api, Patch, PatchParams};
use sales_order_operator::api::{
    ConditionType, D365Connection, MappedField, SalesOrderStatus, SalesStatus,
};
use serde_json::json;

use crate::connection::wait_connection;
use crate::support::{create_orders, env, wait_reason};

/// PATCHes the emulator received, accepted or not.
fn patches(env: &crate::support::Env) -> usize {
    env.emu
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

fn mapped<'a>(fields: &'a [MappedField], mapping: &str) -> &'a MappedField {
    fields.iter().find(|f| f.mapping == mapping).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_status_stalls_orders_without_a_patch() {
    let faults = Faults {
        read_only_fields: vec!["SalesOrderStatus".into()],
        ..Faults::default()
    };
    let env = env("meta-readonly", 3, faults).await;
    // Two orders need the status, and exist before the operator starts:
    // their first reconciles race the connection's first check, and must
    // wait for its $metadata instead of sending a PATCH.
    create_orders(
        &env.client,
        &env.ns,
        [SalesOrderStatus::test(1), SalesOrderStatus::test(2)],
    )
    .await;
    let _op = env.operator(&[]);
    let conn = wait_connection(&env, "FieldNotEditable").await;
    let status = conn.status.unwrap();
    let ready = &status.conditions[0];
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains(
            "SalesOrderStatus is not editable on SalesOrderHeadersV2 in this environment \
             (AllowEdit=false); map salesStatus to an editable field"
        ),
        "{}",
        ready.message
    );
    let entity = status.entity.expect("status.entity");
    assert_eq!(
        entity.entity_type,
        "Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2"
    );
    assert_eq!(entity.key, ["dataAreaId", "SalesOrderNumber"]);
    let status_field = mapped(&entity.fields, "salesStatus");
    assert_eq!(
        (status_field.editable, status_field.edm_type.as_deref()),
        (
            Some(false),
            Some("Microsoft.Dynamics.DataEntities.SalesStatus")
        )
    );
    let date = mapped(&entity.fields, "deliveryDate");
    assert_eq!(
        (date.editable, date.edm_type.as_deref()),
        (Some(true), Some("Edm.DateTimeOffset"))
    );
    let get = env.cp.kubectl(&["get", "d365c", "-n", &env.ns]);
    let table = String::from_utf8_lossy(&get.stdout);
    let row = table.lines().find(|l| l.starts_with("usmf")).unwrap();
    assert!(
        row.contains(" False ") && row.contains("FieldNotEditable"),
        "{table}"
    );

    // One order needs only a date (its status is already the one wanted):
    // that one is written.
    let date_only = SalesOrderStatus::test(3).wanting(SalesStatus::Backorder);
    for name in ["so-2025-0001", "so-2025-0002"] {
        let order = wait_reason(&env, name, "FieldNotEditable").await;
        let stalled = order.condition(ConditionType::Stalled).unwrap();
        assert_eq!(stalled.status, "True", "{name}");
        assert!(
            stalled.message.contains("no request sent"),
            "{}",
            stalled.message
        );
    }
    assert_eq!(patches(&env), 0, "no PATCH for a read-only field");
    assert!(env.client_writes().is_empty());
    create_orders(&env.client, &env.ns, [date_only]).await;
    wait_reason(&env, "so-2025-0003", "Updated").await;
    let writes = env.client_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].sales_order_number, "SO-2025-0003");
    assert!(!writes[0].fields.contains_key("SalesOrderStatus"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edm_date_field_is_written_as_a_date() {
    let faults = Faults {
        date_only_fields: vec!["ConfirmedReceiptDate".into()],
        ..Faults::default()
    };
    let env = env("meta-date", 1, faults).await;
    let _op = env.operator(&[]);
    let conn = wait_connection(&env, "Authenticated").await;
    let entity = conn.status.unwrap().entity.expect("status.entity");
    let date = mapped(&entity.fields, "deliveryDate");
    assert_eq!(date.edm_type.as_deref(), Some("Edm.Date"));
    create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    let order = wait_reason(&env, "so-2025-0001", "Updated").await;
    let observed = order.status.unwrap().observed.unwrap();
    assert_eq!(observed.delivery_date.as_deref(), Some("2025-02-08"));
    let writes = env.client_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].fields["ConfirmedReceiptDate"], "2025-02-08");
    let refused = env.emu.history().iter().filter(|w| !w.accepted).count();
    assert_eq!(refused, 0, "no write was refused");
    let stored = env.emu.order("usmf", "SO-2025-0001").unwrap();
    assert_eq!(stored["ConfirmedReceiptDate"], "2025-02-08");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_metadata_leaves_the_connection_working() {
    // Past the operator's 64 MiB budget: the read is refused, not buffered.
    let faults = Faults {
        metadata_padding_mb: 65,
        ..Faults::default()
    };
    let env = env("meta-unreadable", 1, faults).await;
    let _op = env.operator(&[]);
    let conn = wait_connection(&env, "MetadataUnavailable").await;
    let status = conn.status.unwrap();
    let ready = &status.conditions[0];
    assert_eq!(ready.status, "True");
    assert!(
        ready.message.contains("larger than") && ready.message.contains("capabilities unknown"),
        "{}",
        ready.message
    );
    assert!(status.entity.is_none());
    create_orders(&env.client, &env.ns, [SalesOrderStatus::test(1)]).await;
    wait_reason(&env, "so-2025-0001", "Updated").await;
}

/// A spec change is checked again: a mapping to a field the type lacks is
/// FieldNotFound, an entity set the service lacks is EntitySetNotFound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mapping_or_entity_set_is_checked_again() {
    let env = env("meta-respec", 1, Faults::default()).await;
    let _op = env.operator(&[]);
    let conn = wait_connection(&env, "Authenticated").await;
    let entity = conn.status.unwrap().entity.expect("status.entity");
    assert!(
        entity
            .fields
            .iter()
            .all(|f| f.found && f.editable == Some(true))
    );
    let conns: Api<D365Connection> = Api::namespaced(env.client.clone(), &env.ns);
    let patch = |spec: serde_json::Value| {
        let conns = conns.clone();
        async move {
            conns
                .patch(
                    "usmf",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": spec})),
                )
                .await
                .unwrap();
        }
    };
    patch(json!({"fields": {"deliveryDate": "DeliveryDate"}})).await;
    let conn = wait_connection(&env, "FieldNotFound").await;
    let status = conn.status.unwrap();
    let message = &status.conditions[0].message;
    assert!(
        message.contains("DeliveryDate is not a property of SalesOrderHeaderV2")
            && message.contains("spec.fields.deliveryDate"),
        "{message}"
    );
    let date = mapped(&status.entity.as_ref().unwrap().fields, "deliveryDate").clone();
    assert_eq!((date.name.as_str(), date.found), ("DeliveryDate", false));
    patch(json!({"entitySet": "SalesOrderHeadersV3", "fields": {"deliveryDate": "ConfirmedReceiptDate"}})).await;
    let conn = wait_connection(&env, "EntitySetNotFound").await;
    let status = conn.status.unwrap();
    assert_eq!(status.conditions[0].status, "False");
    assert!(status.entity.is_none());
}
