//! The chaos run's invariants, checked from the emulator's write journal
//! (what D365 actually accepted, in the order it took effect) rather than
//! from what the operator says it did. Pure functions over the journal and
//! the run's timeline, so each check is itself tested on hand-made
//! journals that violate it.

use std::collections::BTreeMap;

use d365_emulator::{WriteRecord, WriteSource};
use serde_json::Value;

use crate::chaos_timeline::Timeline;

/// A request already in the emulator's socket when its sender was
/// SIGKILLed may still take effect a little later; a dead process sends
/// nothing new, so a write this long after the kill is not in flight.
pub const IN_FLIGHT_MS: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The journal cannot tell: shown, never counted as a pass.
    NotApplicable,
}

/// One line of the printed table.
#[derive(Clone, Debug)]
pub struct Row {
    pub invariant: &'static str,
    pub value: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(invariant: &'static str, value: String, pass: bool) -> Row {
        let verdict = if pass { Verdict::Pass } else { Verdict::Fail };
        Row {
            invariant,
            value,
            verdict,
        }
    }
}

/// The table as text, one row per line.
pub fn render(rows: &[Row]) -> String {
    let name = rows.iter().map(|r| r.invariant.len()).max().unwrap_or(0);
    let width = rows.iter().map(|r| r.value.len()).max().unwrap_or(0);
    let mut out = format!("{:<name$}  {:<width$}  result\n", "invariant", "value");
    for r in rows {
        let verdict = match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "n/a",
        };
        out += &format!("{:<name$}  {:<width$}  {verdict}\n", r.invariant, r.value);
    }
    out
}

fn accepted_client_writes(history: &[WriteRecord]) -> impl Iterator<Item = &WriteRecord> {
    history
        .iter()
        .filter(|w| w.source == WriteSource::Client && w.accepted)
}

/// An accepted client write is safe only if it named the ETag current at
/// that moment; a missing or `*` If-Match is a blind write, just as bad.
fn on_stale_etag(w: &WriteRecord) -> bool {
    let bare = |s: &str| s.trim().trim_start_matches("W/").to_string();
    match w.if_match.as_deref() {
        None => true,
        Some(h) => !h
            .split(',')
            .any(|t| t.trim() != "*" && bare(t) == bare(&w.etag_before)),
    }
}

pub fn stale_etag_row(history: &[WriteRecord]) -> Row {
    let accepted: Vec<_> = accepted_client_writes(history).collect();
    let stale = accepted.iter().filter(|w| on_stale_etag(w)).count();
    Row::new(
        "writes accepted on a stale ETag",
        format!("{stale} of {} accepted client writes", accepted.len()),
        stale == 0,
    )
}

/// One writer means each desired state is written at most once: a second
/// writer undoing the first, or a write repeated after a lost answer,
/// shows as more accepted writes than desired states (orders + changes).
/// Fewer is fine: a spec that changed before its first write needs one.
pub fn writes_per_desired_row(history: &[WriteRecord], desired_states: usize) -> Row {
    let accepted = accepted_client_writes(history).count();
    Row::new(
        "accepted writes per desired state",
        format!("{accepted} for {desired_states} desired states (at most one each)"),
        accepted <= desired_states,
    )
}

/// Every edit by someone else (the external writer, the conflict fault's
/// concurrent writer) must survive until someone else edits that field
/// again: a client write that carries the field loses it, and so does a
/// final value that differs from the last such edit. `current` gives the
/// final value of (company, order, field).
pub fn lost_edits_row(history: &[WriteRecord], current: impl Fn(&str, &str, &str) -> Value) -> Row {
    // (company, order, field) -> (last foreign value, already counted lost)
    let mut last: BTreeMap<(String, String, String), (Value, bool)> = BTreeMap::new();
    let (mut edits, mut lost) = (0usize, 0usize);
    for w in history.iter().filter(|w| w.accepted) {
        let foreign = matches!(
            w.source,
            WriteSource::External | WriteSource::ConcurrentWriter
        );
        for (field, value) in &w.fields {
            let k = (
                w.data_area_id.clone(),
                w.sales_order_number.clone(),
                field.clone(),
            );
            if foreign {
                edits += 1;
                last.insert(k, (value.clone(), false));
            } else if let Some((_, counted)) = last.get_mut(&k).filter(|(_, c)| !c) {
                // A client write carried a field someone else owns.
                *counted = true;
                lost += 1;
            }
        }
    }
    for ((area, number, field), (value, counted)) in &last {
        if !counted && current(area, number, field) != *value {
            lost += 1;
        }
    }
    Row::new(
        "lost concurrent edits",
        format!("{lost} of {edits} edits by other writers"),
        lost == 0,
    )
}

/// The replica a User-Agent names: `sales-order-operator/<v> (<identity>)`.
pub fn writer_identity(agent: Option<&str>) -> Option<&str> {
    let agent = agent?.trim_end();
    let inner = agent.strip_suffix(')')?;
    let open = inner.rfind('(')?;
    Some(inner[open + 1..].trim()).filter(|id| !id.is_empty())
}

/// Why a write by a known replica should not exist, if it should not:
/// (which kind of breach, an example).
fn fence_breach(w: &WriteRecord, identity: &str, timeline: &Timeline) -> Option<(String, String)> {
    let runs = timeline.incarnations_of(identity);
    let Some(last) = runs.last() else {
        let example = format!("#{} by unknown replica {identity}", w.seq);
        return Some(("by an unknown replica".into(), example));
    };
    let Some(inc) = runs.iter().find(|i| i.alive_at(w.at_ms, IN_FLIGHT_MS)) else {
        // No process of that name ran then: name the last one that ended.
        let dead = runs
            .iter()
            .rev()
            .find(|i| i.ended_ms.is_some_and(|e| e < w.at_ms))
            .unwrap_or(last);
        let end = dead.ended_ms.unwrap_or_default();
        let example = format!(
            "#{} by {identity} {} ms after it {}",
            w.seq,
            w.at_ms.saturating_sub(end),
            dead.end
        );
        return Some((format!("after the process {}", dead.end), example));
    };
    let lease = timeline.lease_ms;
    let outage = timeline.outages.iter().find(|o| {
        o.slot.as_ref().is_none_or(|s| *s == inc.slot)
            && w.at_ms > o.from_ms + lease
            && w.at_ms < o.to_ms
    })?;
    let example = format!(
        "#{} by {identity} {} ms into {} (lease {lease} ms)",
        w.seq,
        w.at_ms - outage.from_ms,
        outage.what,
    );
    Some((format!("in {}", outage.what), example))
}

/// No replica writes past its fencing deadline: its deadline is at most
/// (start of its loss of the API server) + lease duration, because its
/// last renewal was before that loss; and a killed replica writes nothing.
/// Writers are told apart by the identity in their User-Agent: if no write
/// names one the row cannot tell (n/a); if only some do, it fails.
pub fn fence_row(history: &[WriteRecord], timeline: &Timeline) -> Row {
    let invariant = "writes past a fencing deadline";
    let writes: Vec<_> = accepted_client_writes(history).collect();
    let identified: Vec<_> = writes
        .iter()
        .filter_map(|w| Some((*w, writer_identity(w.agent.as_deref())?)))
        .collect();
    let unnamed = writes.len() - identified.len();
    if identified.is_empty() && !writes.is_empty() {
        let agent = writes[0].agent.as_deref().unwrap_or("none");
        return Row {
            invariant,
            value: format!("n/a (writer not identified: User-Agent {agent:?})"),
            verdict: Verdict::NotApplicable,
        };
    }
    let breaches: Vec<(String, String)> = identified
        .iter()
        .filter_map(|(w, id)| fence_breach(w, id, timeline))
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, _) in &breaches {
        *kinds.entry(kind).or_default() += 1;
    }
    let windows: Vec<&str> = timeline.outages.iter().map(|o| o.what.as_str()).collect();
    let mut value = format!(
        "{} of {} writes (checked: {}, and after kills)",
        breaches.len(),
        writes.len(),
        windows.join(", ")
    );
    for (kind, n) in &kinds {
        value += &format!("; {n} {kind}");
    }
    if unnamed > 0 {
        value += &format!("; {unnamed} writes name no replica");
    }
    if let Some((_, example)) = breaches.first() {
        value += &format!("; e.g. {example}");
    }
    Row::new(invariant, value, breaches.is_empty() && unnamed == 0)
}

/// Total `/data` requests per order, with a generous bound: a retry storm
/// or a reconcile loop shows up here long before it shows up in latency.
pub fn requests_row(counters: &BTreeMap<String, u64>, orders: usize, bound: f64) -> Row {
    let total: u64 = counters.values().sum();
    let per_order = total as f64 / orders.max(1) as f64;
    Row::new(
        "requests per order",
        format!("{per_order:.1} ({total} /data requests; bound {bound})"),
        per_order <= bound,
    )
}
