//! Every operator metric the bench reads, in one place, and a reader of
//! the Prometheus text. Samples are matched by exact name and by the
//! labels asked for, so labels added later (a namespace, a connection)
//! change nothing here.

/// Objects by Ready reason (a gauge).
pub const OBJECTS: &str = "sales_order_operator_objects";
/// D365 HTTP requests by method, kind and code.
pub const D365_REQUESTS: &str = "sales_order_operator_d365_requests_total";
/// Status subresource patches.
pub const STATUS_WRITES: &str = "sales_order_operator_status_writes_total";
/// D365 answers 409/412.
pub const CONFLICTS: &str = "sales_order_operator_d365_conflicts_total";
/// Reconciles by result.
pub const RECONCILES: &str = "controller_runtime_reconcile_total";

/// Ready reasons whose condition status is True.
pub const READY_REASONS: [&str; 2] = ["InSync", "Updated"];

/// Sum of the samples of `name` whose labels include every `(key, value)`
/// of `labels` (a sample without labels matches an empty `labels`).
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = text.lines().filter_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.rsplit_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| has_label(set, k, v))
            .then(|| value.trim().parse::<f64>().ok())?
    });
    // 0.0 + : an empty float sum is -0.0.
    0.0 + samples.sum::<f64>()
}

/// Whether a label set (`a="x",b="y"`) holds `key="value"`.
fn has_label(set: &str, key: &str, value: &str) -> bool {
    set.split(',')
        .any(|pair| pair.trim() == format!("{key}=\"{value}\""))
}

/// Objects whose Ready condition is True.
pub fn ready(text: &str) -> f64 {
    READY_REASONS
        .iter()
        .map(|r| sum(text, OBJECTS, &[("reason", r)]))
        .sum()
}
