//! Coalescing the GETs of one connection into collection reads.
//!
//! One order read costs one request of the connection's budget; a read of
//! many orders by `$filter` costs one too. When batching is on, order
//! reads go in rounds: a read asked for while no round is out starts one
//! at once; reads asked for while a round is out wait for it and then
//! leave together: `GET <set>?cross-company=true&$select=…&$filter=
//! dataAreaId eq 'usmf' and (SalesOrderNumber eq 'A' or …)`, split by
//! [`plan_reads`](super::bulk_filter::plan_reads) so URLs stay short,
//! following `@odata.nextLink` [doc]. So the reads coalesce exactly what
//! the limiter makes wait, and an idle connection adds no delay (no
//! window). Each caller gets its own row, with its `@odata.etag`, or
//! `NotFound` when its row is absent; a failed read fails only its own
//! callers, with the error a single GET would get (a paused connection
//! refuses at once, as for a single GET).

use std::sync::{Arc, Mutex};

use futures::future::join_all;
use serde_json::Value;
use tokio::sync::oneshot;
use url::Url;

use super::bulk_filter::{
    KEY_FIELDS, MAX_FILTER_CHARS, MAX_KEYS_PER_READ, Read, RowsByOrder, plan_reads, row_of,
    rows_by_order,
};
use super::collection::{QUERY_VALUE, next_link};
use super::entity::entity_from;
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
    /// Most drains in flight at once.
    rounds: usize,
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
    /// Drain tasks running.
    in_flight: usize,
}

struct Pending {
    key: OrderKey,
    select: Vec<String>,
    reply: oneshot::Sender<Reply>,
}

impl Reader {
    /// Reads go to `collection` through `sender`; `rounds` (at least 1)
    /// drains of the queue may be in flight at once.
    pub(crate) fn new(rounds: usize, root: Url, collection: Url, sender: Arc<Sender>) -> Self {
        Self {
            shared: Arc::new(Shared {
                rounds: rounds.max(1),
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
            if queue.in_flight < self.shared.rounds {
                queue.in_flight += 1;
                tokio::spawn(self.clone().drain());
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(D365Error::unavailable(
                None,
                format!("GET {key}: the bulk read ended without an answer"),
            ))
        })
    }

    /// Sends everything queued as one round (taken when the task runs, so
    /// reads asked for in the same instant go together), then whatever
    /// queued while it was out, until the queue is empty.
    async fn drain(self) {
        loop {
            let ops = {
                let mut queue = lock(&self.shared.queue);
                if queue.pending.is_empty() {
                    queue.in_flight -= 1;
                    return;
                }
                std::mem::take(&mut queue.pending)
            };
            self.round(ops).await;
        }
    }

    /// Reads every order of `ops`, in as many reads as the plan needs, all
    /// at once (the limiter paces them).
    async fn round(&self, ops: Vec<Pending>) {
        let keys: Vec<&OrderKey> = ops.iter().map(|op| &op.key).collect();
        let reads = plan_reads(&keys, MAX_FILTER_CHARS, MAX_KEYS_PER_READ);
        let select = union_select(&ops);
        let mut ops: Vec<Option<Pending>> = ops.into_iter().map(Some).collect();
        let sends = reads.into_iter().map(|read| {
            let callers: Vec<Pending> =
                read.callers.iter().filter_map(|&i| ops[i].take()).collect();
            let query = query(&read, select.as_deref());
            async move {
                let result = self.read(&read, query).await;
                answer(callers, result);
            }
        });
        join_all(sends.collect::<Vec<_>>()).await;
    }

    /// The rows of one read, every page.
    async fn read(&self, read: &Read, query: String) -> Result<RowsByOrder, D365Error> {
        let what = format!("GET {} orders of {} in bulk", read.numbers.len(), read.area);
        let mut url = self.shared.collection.clone();
        url.set_query(Some(&query));
        let mut next = Some(url);
        let mut rows = Vec::new();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(D365Error::invalid(format!(
                    "{what}: more than {MAX_PAGES} pages"
                )));
            }
            let request = ODataRequest::get(url.clone());
            let answer = self.shared.sender.execute(&request).await?;
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

/// The `$select` of a round: every caller's fields and the key fields;
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
