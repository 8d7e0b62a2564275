use super::*;
use crate::d365::RequestKind;

#[test]
fn renders_counts_and_moves_objects_between_reasons() {
    let m = Metrics::default();
    let ev = |status| RequestEvent {
        method: "PATCH",
        kind: RequestKind::Entity,
        status,
        duration: Duration::from_millis(3),
    };
    m.observe(&ev(Some(412)));
    m.observe(&ev(Some(409)));
    m.observe(&ev(Some(429)));
    m.observe(&ev(None));
    m.outcome("orders/a", Reason::Conflict);
    m.outcome("orders/a", Reason::Updated);
    m.outcome("orders/b", Reason::Updated);
    let text = m.render();
    assert!(text.contains("d365_conflicts_total 2"), "{text}");
    assert!(text.contains("d365_throttles_total 1"));
    assert!(
        text.contains(r#"d365_requests_total{method="PATCH",kind="entity",code="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sales_order_objects{reason="Updated"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sales_order_objects{reason="Conflict"} 0"#),
        "{text}"
    );
    m.connection_requeue(RequeueCause::Busy);
    m.connection_requeue(RequeueCause::Busy);
    m.connection_requeue(RequeueCause::Paused);
    let text = m.render();
    assert!(
        text.contains(r#"sales_order_connection_requeues_total{cause="busy"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sales_order_connection_requeues_total{cause="paused"} 1"#),
        "{text}"
    );
    m.forget_object("orders/b");
    assert!(
        m.render()
            .contains(r#"sales_order_objects{reason="Updated"} 1"#)
    );
}

#[test]
fn a_reconcile_timer_counts_once_on_drop_and_is_an_error_unless_it_succeeded() {
    let m = Metrics::default();
    drop(m.reconcile_timer());
    m.reconcile_timer().succeeded();
    m.reconcile_timer().requeued();
    let text = m.render();
    let samples = [
        r#"controller_runtime_reconcile_total{controller="salesorderstatus",result="error"} 1"#,
        r#"controller_runtime_reconcile_total{controller="salesorderstatus",result="success"} 1"#,
        r#"controller_runtime_reconcile_total{controller="salesorderstatus",result="requeue_after"} 1"#,
        r#"controller_runtime_reconcile_errors_total{controller="salesorderstatus"} 1"#,
        r#"controller_runtime_reconcile_time_seconds_count{controller="salesorderstatus"} 3"#,
    ];
    for sample in samples {
        assert!(text.contains(sample), "{sample} missing from:\n{text}");
    }
}

#[test]
fn batch_operations_count_like_single_answers() {
    let m = Metrics::default();
    m.observe(&RequestEvent {
        method: "POST",
        kind: RequestKind::Batch,
        status: Some(200),
        duration: Duration::from_millis(3),
    });
    for status in [Some(204), Some(412), Some(409), Some(429), None] {
        m.observe_operation(&OperationEvent {
            method: "PATCH",
            status,
        });
    }
    let text = m.render();
    let samples = [
        r#"d365_requests_total{method="POST",kind="batch",code="200"} 1"#,
        r#"d365_batch_operations_total{method="PATCH",code="204"} 1"#,
        r#"d365_batch_operations_total{method="PATCH",code="412"} 1"#,
        r#"d365_batch_operations_total{method="PATCH",code="unanswered"} 1"#,
        "d365_conflicts_total 2",
        "d365_throttles_total 1",
    ];
    for sample in samples {
        assert!(text.contains(sample), "{sample} missing from:\n{text}");
    }
    assert!(!text.contains(r#"kind="entity""#), "{text}");
}
