//! Coalescing the GETs of one connection into collection reads.
//!
//! One order read costs one request of the connection's budget; a read of
//! many orders by `$filter` costs one too. When batching is on, an order
//! read is queued, and one waiter at a time waits for the limiter's leave
//! to send; only then does it take from the queue what one read can carry
//! — `GET <set>?cross-company=true&$select=…&$filter=dataAreaId eq 'usmf'
//! and (SalesOrderNumber eq 'A' or …)`, as many orders as
//! [`plan_reads`](super::bulk_filter::plan_reads) fits in a short URL —
//! and starts the next waiter if any are left. So a read carries exactly
//! what the limiter made wait, an idle connection adds no delay (no
//! window), and no request of the budget is spent on an empty read.
//! `@odata.nextLink` is followed [doc]. Each caller gets its own row, with
//! its `@odata.etag`, or `NotFound` when its row is absent; a failed read
//! fails only its own callers, with the error a single GET would get (a
//! paused connection refuses at once, as for a single GET).

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;
use url::Url;

use super::bulk_filter::{
    KEY_FIELDS, MAX_FILTER_CHARS, MAX_KEYS_PER_READ, Read, RowsByOrder, plan_reads, row_of,
    rows_by_order,
};
use super::collection::{QUERY_VALUE, next_link};
use super::entity::entity_from;
use super::limiter::Permit;
use super::sender::{ODataRequest, Sender};
use super::{D365Error, Entity, OrderKey};
use crate::locks::lock;

type Reply = Result<Entity, D365Error>;

/// Most pages one bulk read follows: a read names at most
/// [`MAX_KEYS_PER_READ`] orders, so more pages than that mean a server
/// that pages endlessly.
const MAX_PAGES: usize = MAX_KEYS_PER_READ + 1;

/// The queue of one connection's order reads. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Reader {
    shared: Arc<Shared>,
}

struct Shared {
    /// The OData root: where `@odata.nextLink` may point.
    root: Url,
    /// `<root><entity set>`.
    collection: Url,
    sender: Arc<Sender>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    /// A waiter is out (so later reads join what it will take).
    waiter: bool,
}

struct Pending {
    key: OrderKey,
    select: Vec<String>,
    reply: oneshot::Sender<Reply>,
}

impl Reader {
    /// Reads go to `collection` through `sender`.
    pub(crate) fn new(root: Url, collection: Url, sender: Arc<Sender>) -> Self {
        Self {
            shared: Arc::new(Shared {
                root,
                collection,
                sender,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Queues one order read (`select` already checked) and waits for its
    /// own row out of a bulk read.
    pub(crate) async fn get(&self, key: &OrderKey, select: &[&str]) -> Reply {
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = lock(&self.shared.queue);
            queue.pending.push(Pending {
                key: key.clone(),
                select: select.iter().map(|s| (*s).to_owned()).collect(),
                reply,
            });
            if !queue.waiter {
                queue.waiter = true;
                self.start_waiter();
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(D365Error::unavailable(
                None,
                format!("GET {key}: the bulk read ended without an answer"),
            ))
        })
    }

    /// Starts a waiter (a plain function, so the waiter may start the
    /// next one).
    fn start_waiter(&self) {
        let this = self.clone();
        tokio::spawn(async move { this.wait_and_read().await });
    }

    /// The waiter: waits for the limiter's leave, then takes the orders
    /// of the first read the queue plans and reads them; what is left gets
    /// the next waiter. A pause refuses everything queued.
    async fn wait_and_read(self) {
        let permit = match self.shared.sender.permit("GET in bulk").await {
            Ok(permit) => permit,
            Err(e) => return answer(self.take(std::mem::take), Err(e)),
        };
        let Some((ops, read)) = self.take(take_first_read) else {
            return;
        };
        let query = query(&read, union_select(&ops).as_deref());
        let result = self.read(&read, query, permit).await;
        answer(ops, result);
    }

    /// Takes from the queue what `what` takes, and starts the next waiter
    /// if anything is left.
    fn take<T>(&self, what: impl FnOnce(&mut Vec<Pending>) -> T) -> T {
        let mut queue = lock(&self.shared.queue);
        let taken = what(&mut queue.pending);
        queue.waiter = !queue.pending.is_empty();
        if queue.waiter {
            self.start_waiter();
        }
        taken
    }

    /// The rows of one read, every page.
    /// The first page goes with `permit`; later pages wait for their own.
    async fn read(
        &self,
        read: &Read,
        query: String,
        permit: Permit<'_>,
    ) -> Result<RowsByOrder, D365Error> {
        let what = format!("GET {} orders of {} in bulk", read.numbers.len(), read.area);
        let mut url = self.shared.collection.clone();
        url.set_query(Some(&query));
        let mut next = Some(url);
        let mut rows = Vec::new();
        let mut pages = 0;
        let mut permit = Some(permit);
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(D365Error::invalid(format!(
                    "{what}: more than {MAX_PAGES} pages"
                )));
            }
            let request = ODataRequest::get(url.clone());
            let answer = match permit.take() {
                Some(permit) => {
                    self.shared
                        .sender
                        .execute_permitted(permit, &request)
                        .await?
                }
                None => self.shared.sender.execute(&request).await?,
            };
            let invalid = |why: String| D365Error::invalid(format!("{what}: {why}"));
            let mut body = answer
                .json
                .ok_or_else(|| invalid(format!("answer {} is not a JSON object", answer.status)))?;
            match body.remove("value") {
                Some(Value::Array(page)) => {
                    for row in page {
                        match row {
                            Value::Object(row) => rows.push(row),
                            other => {
                                return Err(invalid(format!("a row is not an object: {other}")));
                            }
                        }
                    }
                }
                _ => return Err(invalid("no \"value\" array in the answer".into())),
            }
            next = match body.get("@odata.nextLink") {
                None | Some(Value::Null) => None,
                Some(Value::String(link)) => {
                    Some(next_link(link, &url, &self.shared.root).map_err(invalid)?)
                }
                Some(other) => {
                    return Err(invalid(format!("@odata.nextLink is not a string: {other}")));
                }
            };
        }
        tracing::info!(
            orders = read.numbers.len(),
            rows = rows.len(),
            pages,
            "D365 bulk read"
        );
        rows_by_order(rows).map_err(|why| D365Error::invalid(format!("{what}: {why}")))
    }
}

/// Takes out of `pending` the callers of the first read its plan makes,
/// with that read (its `callers` renumbered to the taken callers); `None`
/// for an empty queue.
fn take_first_read(pending: &mut Vec<Pending>) -> Option<(Vec<Pending>, Read)> {
    let keys: Vec<&OrderKey> = pending.iter().map(|op| &op.key).collect();
    let mut read = plan_reads(&keys, MAX_FILTER_CHARS, MAX_KEYS_PER_READ)
        .into_iter()
        .next()?;
    let mut chosen = vec![false; pending.len()];
    for &i in &read.callers {
        chosen[i] = true;
    }
    let (mut taken, mut left) = (Vec::new(), Vec::new());
    for (op, chosen) in std::mem::take(pending).into_iter().zip(chosen) {
        if chosen {
            taken.push(op)
        } else {
            left.push(op)
        }
    }
    *pending = left;
    read.callers = (0..taken.len()).collect();
    Some((taken, read))
}

/// The `$select` of a read: every caller's fields and the key fields;
/// `None` (every property) if any caller asked for every property.
fn union_select(ops: &[Pending]) -> Option<String> {
    if ops.iter().any(|op| op.select.is_empty()) {
        return None;
    }
    let mut fields: Vec<&str> = KEY_FIELDS.to_vec();
    for field in ops.iter().flat_map(|op| &op.select) {
        if !fields.contains(&field.as_str()) {
            fields.push(field);
        }
    }
    Some(fields.join(","))
}

/// `cross-company=true&$select=…&$filter=<encoded>`.
fn query(read: &Read, select: Option<&str>) -> String {
    let mut query = "cross-company=true".to_owned();
    if let Some(select) = select {
        query.push_str("&$select=");
        query.push_str(select);
    }
    query.push_str("&$filter=");
    query.extend(percent_encoding::utf8_percent_encode(
        &read.filter(),
        QUERY_VALUE,
    ));
    query
}

/// Gives each caller its own row (only the fields it selected) or error.
fn answer(callers: Vec<Pending>, result: Result<RowsByOrder, D365Error>) {
    for op in callers {
        let reply = match &result {
            Err(e) => Err(e.clone()),
            Ok(rows) => entity_of(rows, &op),
        };
        let _ = op.reply.send(reply);
    }
}

/// The entity of `op` from the rows read: `NotFound` without its row,
/// `InvalidResponse` without an ETag, the fields trimmed to its `$select`
/// so it sees what a single GET would have given.
fn entity_of(rows: &RowsByOrder, op: &Pending) -> Reply {
    let key = &op.key;
    let Some(row) = row_of(rows, key) else {
        return Err(D365Error::NotFound {
            message: format!("order {key} not found (no row in the bulk read)"),
        });
    };
    let mut row = row.clone();
    if !op.select.is_empty() {
        row.retain(|name, _| name.starts_with('@') || op.select.iter().any(|s| s == name));
    }
    entity_from(row, &Default::default()).ok_or_else(|| {
        D365Error::invalid(format!("GET {key}: the bulk read's row has no @odata.etag"))
    })
}
