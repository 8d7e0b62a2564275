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
    m.outcome("orders", "a", "usmf", Reason::Conflict);
    m.outcome("orders", "a", "usmf", Reason::Updated);
    m.outcome("orders", "b", "usmf", Reason::Updated);
    let text = m.render();
    assert!(
        text.contains("sales_order_operator_d365_conflicts_total 2"),
        "{text}"
    );
    assert!(text.contains("sales_order_operator_d365_throttles_total 1"));
    assert!(
        text.contains(r#"sales_order_operator_d365_requests_total{method="PATCH",kind="entity",code="error"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"sales_order_operator_objects{reason="Updated",namespace="orders",connection="usmf"} 2"#
        ),
        "{text}"
    );
    assert!(
        !text.contains(r#"sales_order_operator_objects{reason="Conflict""#),
        "a series no order counts in is gone, not a stale 0: {text}"
    );
    m.connection_requeue(RequeueCause::Busy);
    m.connection_requeue(RequeueCause::Busy);
    m.connection_requeue(RequeueCause::Paused);
    let text = m.render();
    assert!(
        text.contains(r#"sales_order_operator_connection_requeues_total{cause="busy"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"sales_order_operator_connection_requeues_total{cause="paused"} 1"#),
        "{text}"
    );
    m.forget_object("orders", "b");
    assert!(m.render().contains(
        r#"sales_order_operator_objects{reason="Updated",namespace="orders",connection="usmf"} 1"#
    ));
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
        r#"sales_order_operator_d365_requests_total{method="POST",kind="batch",code="200"} 1"#,
        r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="204"} 1"#,
        r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="412"} 1"#,
        r#"sales_order_operator_d365_batch_operations_total{method="PATCH",code="unanswered"} 1"#,
        "sales_order_operator_d365_conflicts_total 2",
        "sales_order_operator_d365_throttles_total 1",
    ];
    for sample in samples {
        assert!(text.contains(sample), "{sample} missing from:\n{text}");
    }
    assert!(!text.contains(r#"kind="entity""#), "{text}");
}

/// The objects gauge of one order's series, 0 when the series is absent.
fn objects(text: &str, reason: &str, namespace: &str, connection: &str) -> i64 {
    let series = format!(
        r#"sales_order_operator_objects{{reason="{reason}",namespace="{namespace}",connection="{connection}"}} "#
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_objects_gauge_follows_each_orders_namespace_connection_and_reason_without_stale_series() {
    let m = Metrics::default();
    // Same name in two namespaces: two orders, each in its own series.
    m.outcome("team-a", "so-1", "usmf", Reason::Updated);
    m.outcome("team-b", "so-1", "usmf", Reason::Updated);
    m.outcome("team-b", "so-2", "demf", Reason::Forbidden);
    let text = m.render();
    assert_eq!(objects(&text, "Updated", "team-a", "usmf"), 1, "{text}");
    assert_eq!(objects(&text, "Updated", "team-b", "usmf"), 1, "{text}");
    assert_eq!(objects(&text, "Forbidden", "team-b", "demf"), 1, "{text}");

    // A new reason and a new connection move the order, not copy it.
    m.outcome("team-b", "so-2", "usmf", Reason::InSync);
    let text = m.render();
    let objects_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("sales_order_operator_objects{"))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        !objects_lines(&text).iter().any(|l| l.contains("Forbidden")),
        "{text}"
    );
    assert_eq!(objects(&text, "InSync", "team-b", "usmf"), 1, "{text}");

    // Deleting every order of a namespace leaves no series of it behind.
    m.forget_object("team-a", "so-1");
    m.forget_object("team-a", "so-1");
    let text = m.render();
    let lines = objects_lines(&text);
    assert!(!lines.iter().any(|l| l.contains("team-a")), "{text}");
    let total: i64 = lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(total, 2, "{text}");
}

#[test]
fn every_own_metric_has_the_prefix_and_build_info_and_leases_are_labelled() {
    let m = Metrics::default();
    m.set_leader("sales-order-operator-shard-0", true);
    m.set_leader("sales-order-operator-shard-1", false);
    m.status_written();
    let text = m.render();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            r#"sales_order_operator_build_info{{version="{version}""#
        )) && l.ends_with("} 1")),
        "{text}"
    );
    assert!(
        text.contains(r#"sales_order_operator_leader{lease="sales-order-operator-shard-0"} 1"#)
    );
    assert!(
        text.contains(r#"sales_order_operator_leader{lease="sales-order-operator-shard-1"} 0"#)
    );
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap_or_default();
        assert!(
            name.starts_with("sales_order_operator_")
                || name.starts_with("controller_runtime_reconcile")
                || name.starts_with("process_"),
            "{name} is outside the naming scheme"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_come_from_proc_self() {
    let text = Metrics::default().render();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        assert!(value >= 0.0, "{name} {value}");
    }
    let s = process::sample();
    assert!(s.resident_bytes.unwrap() > 0 && s.virtual_bytes >= s.resident_bytes);
    assert!(s.open_fds.unwrap() > 0 && s.max_fds >= s.open_fds);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = s.start_time_seconds.unwrap();
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );
}

#[test]
fn proc_parsers_read_the_documented_fields() {
    // A command name with spaces and parentheses; utime 250, stime 50,
    // starttime 12345 (fields 14, 15 and 22).
    let stat = "42 (tokio (x) y) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 9 0 12345 1000 20";
    assert_eq!(
        process::parse_stat(stat),
        Some(process::Stat {
            cpu_ticks: 300,
            start_ticks: 12345
        })
    );
    assert_eq!(process::parse_stat("42 (cut"), None);
    assert_eq!(
        process::status_kib("Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t 512 kB\n", "VmRSS:"),
        Some(512)
    );
    let limits = "Limit Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n";
    assert_eq!(process::max_open_files(limits), Some(1024));
    assert_eq!(
        process::boot_time("cpu 1 2\nbtime 1700000000\n"),
        Some(1_700_000_000)
    );
}
