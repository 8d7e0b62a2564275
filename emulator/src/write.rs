//! PATCH semantics shared by single requests and `$batch` changesets:
//! If-Match evaluation [obs][spec], field validation [doc], business rules
//! (final statuses → 400, or 500 in older releases [obs]), privileges (403), the simulated concurrent
//! writer, and the write history.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use crate::config::Faults;
use crate::entity::Order;
use crate::journal::{WriteRecord, WriteSource};
use crate::odata::{ODataError, PROTOCOL_EXCEPTION};
use crate::refusal::{refusal, split_dates};
use crate::state::State;
use crate::store::{Key, Table, find, key};

/// Numbers the simulated concurrent writer's edits.
static CONCURRENT_EDITS: AtomicU64 = AtomicU64::new(0);

/// Message integrators report with 409 [field report].
pub const MODIFIED_BY_ANOTHER_USER: &str = "The record has been modified by another user.";

/// One PATCH to evaluate.
pub struct PatchOp<'a> {
    pub area: &'a str,
    pub number: &'a str,
    pub if_match: Option<&'a str>,
    pub body: &'a [u8],
    pub cross_company: bool,
    /// The client's `User-Agent`, recorded as the writer.
    pub agent: Option<&'a str>,
}

/// A successful PATCH: the entity after the write (its ETag is the new
/// one) and the status to answer with.
pub struct Patched {
    pub order: Order,
    pub status: u16,
}

/// Applies one PATCH atomically.
pub fn patch(state: &State, op: &PatchOp<'_>, via_batch: bool) -> Result<Patched, ODataError> {
    let faults = state.faults();
    let mut table = state.store.write();
    let k = key(op.area, op.number);
    concurrent_writer(state, &faults, &mut table, &k);
    let current = find(
        &table,
        op.area,
        op.number,
        faults.case_sensitive_order_numbers,
    );
    match decide(state, &faults, current, op) {
        Ok(change) => {
            let done = accepted(&faults, &change.order);
            state
                .journal
                .write(change.record(op, current, done.status, via_batch));
            table.insert(k, Arc::new(change.order));
            Ok(done)
        }
        Err((err, fields)) => {
            state
                .journal
                .write(record(op, current, None, err.status, fields, via_batch));
            Err(err)
        }
    }
}

/// Applies a changeset all-or-nothing [doc]. On failure returns the index
/// of the failing operation and its error; earlier operations are rolled
/// back and recorded as refused with status 424 (failed dependency).
pub fn changeset(state: &State, ops: &[PatchOp<'_>]) -> Result<Vec<Patched>, (usize, ODataError)> {
    let faults = state.faults();
    let mut table = state.store.write();
    let mut staged: HashMap<Key, Order> = HashMap::new();
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let k = key(op.area, op.number);
        if !staged.contains_key(&k) {
            concurrent_writer(state, &faults, &mut table, &k);
        }
        let current = staged
            .get(&k)
            .or_else(|| table.get(&k).map(|o| &**o))
            .filter(|o| !faults.case_sensitive_order_numbers || o.number() == op.number);
        match decide(state, &faults, current, op) {
            Ok(change) => {
                let done = accepted(&faults, &change.order);
                records.push(change.record(op, current, done.status, true));
                results.push(done);
                staged.insert(k, change.order);
            }
            Err((err, fields)) => {
                for mut r in records {
                    r.accepted = false;
                    r.etag_after = None;
                    r.status = 424;
                    state.journal.write(r);
                }
                state
                    .journal
                    .write(record(op, current, None, err.status, fields, true));
                return Err((i, err));
            }
        }
    }
    for r in records {
        state.journal.write(r);
    }
    table.extend(staged.into_iter().map(|(k, o)| (k, Arc::new(o))));
    Ok(results)
}

fn accepted(faults: &Faults, order: &Order) -> Patched {
    Patched {
        order: order.clone(),
        status: if faults.patch_returns_entity {
            200
        } else {
            204
        },
    }
}

fn record(
    op: &PatchOp<'_>,
    before: Option<&Order>,
    after: Option<&Order>,
    status: u16,
    fields: Map<String, Value>,
    via_batch: bool,
) -> WriteRecord {
    WriteRecord {
        seq: 0,
        data_area_id: op.area.to_lowercase(),
        // The order's own spelling: `so-1` may have found `SO-1`.
        sales_order_number: before.map_or(op.number, Order::number).to_string(),
        source: WriteSource::Client,
        if_match: op.if_match.map(str::to_string),
        etag_before: before.map(|o| o.etag.clone()).unwrap_or_default(),
        etag_after: after.map(|o| o.etag.clone()),
        accepted: after.is_some(),
        status,
        fields,
        ignored: Vec::new(),
        via_batch,
        at_ms: 0,
        agent: op.agent.map(str::to_string),
    }
}

/// A PATCH that passed every check: the record after it, the fields it
/// sent, and those of them the `ignoreWrites` fault left unapplied.
struct Change {
    order: Order,
    fields: Map<String, Value>,
    ignored: Vec<String>,
}

impl Change {
    fn record(
        &self,
        op: &PatchOp<'_>,
        before: Option<&Order>,
        status: u16,
        batch: bool,
    ) -> WriteRecord {
        let mut r = record(
            op,
            before,
            Some(&self.order),
            status,
            self.fields.clone(),
            batch,
        );
        r.ignored = self.ignored.clone();
        r
    }
}

type Decision = Result<Change, (ODataError, Map<String, Value>)>;

/// Decides one PATCH against the current record; returns the new record.
fn decide(state: &State, faults: &Faults, current: Option<&Order>, op: &PatchOp<'_>) -> Decision {
    let raw: Map<String, Value> = match serde_json::from_slice::<Value>(op.body) {
        Ok(Value::Object(m)) => m,
        _ => {
            let e = ODataError::bad_request(
                "The request body must be a JSON object describing the entity's properties.",
            );
            return Err((e, Map::new()));
        }
    };
    let current = match current {
        Some(o) if state.visible(op.area, op.cross_company) => o,
        _ => return Err((ODataError::entity_not_found(op.area, op.number), raw)),
    };
    let mut rest = raw.clone();
    let dates = match split_dates(faults, &mut rest) {
        Ok(dates) => dates,
        Err(e) => return Err((e, raw)),
    };
    let mut fields = match current.validate_patch(&rest) {
        Ok(f) => f,
        Err(e) => return Err((ODataError::new(400, e.to_string(), PROTOCOL_EXCEPTION), raw)),
    };
    fields.extend(dates);
    if let Some(e) = refusal(faults, current, op, &fields) {
        return Err((e, fields));
    }
    Ok(change(state, faults, current, fields))
}

/// The accepted PATCH applied. The `ignoreWrites` fault: those fields stay
/// as they are; with nothing applied the record (and its ETag) is unchanged.
fn change(state: &State, faults: &Faults, current: &Order, fields: Map<String, Value>) -> Change {
    let (ignored, applied): (Vec<_>, Vec<_>) = fields.iter().partition(|(k, _)| faults.ignores(k));
    let mut order = current.clone();
    if !applied.is_empty() {
        let applied: Map<String, Value> = applied
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        order.apply(&applied);
        order.etag = state.store.next_etag(order.rec_id);
    }
    let ignored = ignored.into_iter().map(|(k, _)| k.clone()).collect();
    Change {
        order,
        fields,
        ignored,
    }
}

/// The `conflictRate` fault: another user changes an unmanaged field (so
/// the ETag) just before the client's PATCH is evaluated [field report].
fn concurrent_writer(state: &State, faults: &Faults, table: &mut Table, k: &Key) {
    if !table.contains_key(k) || !state.rng.chance(faults.conflict_rate) {
        return;
    }
    let Some(order) = table.get_mut(k).map(Arc::make_mut) else {
        return;
    };
    let n = CONCURRENT_EDITS.fetch_add(1, Ordering::Relaxed) + 1;
    let fields = json!({"CustomerRequisitionNumber": format!("CW-{n:06}")});
    let Value::Object(fields) = fields else {
        unreachable!()
    };
    let before = order.etag.clone();
    record_other_write(
        state,
        order,
        fields,
        WriteSource::ConcurrentWriter,
        Some(before),
    );
}

/// An edit by another user outside the client (tests, admin API).
pub fn external_write(
    state: &State,
    area: &str,
    number: &str,
    fields: &Map<String, Value>,
    source: WriteSource,
) -> Option<String> {
    let mut table = state.store.write();
    let order = Arc::make_mut(table.get_mut(&key(area, number))?);
    let fields = order.validate_patch(fields).ok()?;
    record_other_write(state, order, fields, source, None);
    Some(order.etag.clone())
}

/// Applies a write made by someone other than the client (the simulated
/// concurrent writer, a test, the admin API): new ETag, journal entry.
fn record_other_write(
    state: &State,
    order: &mut Order,
    fields: Map<String, Value>,
    source: WriteSource,
    if_match: Option<String>,
) {
    let before = order.etag.clone();
    order.apply(&fields);
    order.etag = state.store.next_etag(order.rec_id);
    state.journal.write(WriteRecord {
        seq: 0,
        data_area_id: order.area().to_string(),
        sales_order_number: order.number().to_string(),
        source,
        if_match,
        etag_before: before,
        etag_after: Some(order.etag.clone()),
        accepted: true,
        status: 204,
        fields,
        ignored: Vec::new(),
        via_batch: false,
        at_ms: 0,
        agent: None,
    });
}
