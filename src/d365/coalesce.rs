//! Coalescing the PATCHes of one connection into `$batch` calls.
//!
//! When many orders change at once, one HTTP call per PATCH is what fills
//! D365's service-protection budget; a `$batch` of many PATCHes counts as
//! one call to the limiter. Callers do not see the difference: each awaits
//! its own `Result`. GETs are not put in `$batch` (parallel single
//! requests are often faster [doc]); with batching on they go in bulk
//! collection reads instead (`bulk_read`).
//!
//! The first PATCH queued starts one waiter: it lingers `window` (less if
//! the queue fills to `max_operations`), then waits for the limiter's leave
//! to send, and only then takes what is queued, up to `max_operations`. So
//! a batch carries everything that queued while the limiter made it wait:
//! when the request budget is the bottleneck, batches grow to fill it. At
//! most one waiter waits at a time (a second one would spend a request of
//! the budget on what the first could carry); one that leaves the queue
//! non-empty starts the next. Sends run in their own tasks, so a caller
//! that gives up (a cancelled reconcile) cannot tear down a batch that
//! others wait on. A batch of one is still sent as `$batch`: one code
//! path, so what reaches D365 does not depend on timing.
//!
//! A paused connection (a 429's `Retry-After`) holds no PATCH: one is
//! refused at once as `Throttled` with the time left, and a pause that
//! begins while the waiter waits refuses everything queued.
//!
//! The coalescer is given the connection's [`Sender`] when built and sends
//! through it; it never reaches back into the client.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use url::Url;

use super::batch::{self, BatchRequest, BatchResponse};
use super::entity::{PatchOutcome, json_object};
use super::error::ResponseContext;
use super::limiter::Permit;
use super::sender::{ODataRequest, Sender};
use super::settings::BatchSettings;
use super::{D365Error, ETag, OperationEvent, OrderKey};
use crate::locks::lock;

type Reply = Result<PatchOutcome, D365Error>;

/// The queue of one connection's PATCHes waiting for their batch. Cheap
/// to clone: the timer and send tasks hold clones.
#[derive(Clone)]
pub(crate) struct Coalescer {
    shared: Arc<Shared>,
}

struct Shared {
    settings: BatchSettings,
    /// `<root>/$batch`.
    url: Url,
    sender: Arc<Sender>,
    queue: Mutex<Queue>,
    /// Told when the queue reaches `max_operations`: the waiter stops
    /// lingering.
    full: Notify,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// A waiter is out (so later PATCHes join what it will take).
    waiter: bool,
}

struct Pending {
    key: OrderKey,
    if_match: ETag,
    url: String,
    body: Vec<u8>,
    reply: oneshot::Sender<Reply>,
}

impl Coalescer {
    /// `url` is the connection's `$batch` endpoint; batches go out through
    /// `sender` (limiter, token, one retry on 401, pause on 429).
    pub(crate) fn new(settings: BatchSettings, url: Url, sender: Arc<Sender>) -> Self {
        let settings = BatchSettings {
            max_operations: settings.max_operations.max(1),
            ..settings
        };
        Self {
            shared: Arc::new(Shared {
                settings,
                url,
                sender,
                queue: Mutex::new(Queue::default()),
                full: Notify::new(),
            }),
        }
    }

    /// Queues one PATCH (`url` absolute, query included) and waits for its
    /// own answer out of the batch.
    pub(crate) async fn patch(
        &self,
        key: &OrderKey,
        if_match: &ETag,
        url: String,
        body: Vec<u8>,
    ) -> Reply {
        // A paused connection holds no order: it is refused now, not after
        // the window and not after the pause.
        self.shared
            .sender
            .refuse_if_paused(&format!("PATCH {key}"))?;
        let (reply, answer) = oneshot::channel();
        {
            let mut queue = lock(&self.shared.queue);
            queue.pending.push_back(Pending {
                key: key.clone(),
                if_match: if_match.clone(),
                url,
                body,
                reply,
            });
            if queue.pending.len() >= self.shared.settings.max_operations {
                self.shared.full.notify_one();
            }
            if !queue.waiter {
                queue.waiter = true;
                self.start_waiter(true);
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(D365Error::unavailable(
                None,
                format!("PATCH {key}: the batch ended without an answer"),
            ))
        })
    }

    /// Starts a waiter: the first of a burst lingers, one for what the
    /// last one left queued does not.
    fn start_waiter(&self, linger: bool) {
        let this = self.clone();
        tokio::spawn(async move { this.wait_and_send(linger).await });
    }

    /// The waiter: lingers out the window (when `linger`; a full queue or
    /// a pause ends it early), waits for the limiter's leave, then takes
    /// up to `max_operations` PATCHes and sends them. What it leaves
    /// queued gets the next waiter, which does not linger. A pause refuses
    /// everything queued.
    async fn wait_and_send(self, linger: bool) {
        if linger {
            self.linger().await;
        }
        let max = self.shared.settings.max_operations;
        match self.shared.sender.permit("$batch").await {
            Ok(permit) => {
                let ops = self.take(|pending| pending.drain(..pending.len().min(max)).collect());
                self.send(ops, permit).await;
            }
            Err(e) => {
                for op in self.take(|pending| pending.drain(..).collect()) {
                    self.answer(op, Err(e.clone()), false);
                }
            }
        }
    }

    /// Takes from the queue what `what` takes, and starts the next waiter
    /// if anything is left.
    fn take(&self, what: impl FnOnce(&mut VecDeque<Pending>) -> Vec<Pending>) -> Vec<Pending> {
        let mut queue = lock(&self.shared.queue);
        let taken = what(&mut queue.pending);
        queue.waiter = !queue.pending.is_empty();
        if queue.waiter {
            self.start_waiter(false);
        }
        taken
    }

    /// Waits `window` for company, or less: until the queue is full or
    /// the connection is paused.
    async fn linger(&self) {
        let deadline = Instant::now() + self.shared.settings.window;
        let full = || lock(&self.shared.queue).pending.len() >= self.shared.settings.max_operations;
        while !full() {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = self.shared.sender.until_paused() => return,
                () = self.shared.full.notified() => {}
            }
        }
    }

    /// Sends one `$batch` and answers every caller. A failure of the batch
    /// call itself is every operation's failure.
    async fn send(&self, ops: Vec<Pending>, permit: Permit<'_>) {
        let n = ops.len();
        let started = Instant::now();
        let mut parts = match self.exchange(&ops, permit, started).await {
            Ok(parts) => parts,
            Err(e) => {
                let duration_ms = started.elapsed().as_millis() as u64;
                let status = e.status_code();
                tracing::warn!(operations = n, status, duration_ms, error = %e, "D365 batch failed");
                // A 429 on the batch call has paused the connection already.
                for op in ops {
                    self.answer(op, Err(e.clone()), false);
                }
                return;
            }
        };
        for (i, op) in ops.into_iter().enumerate() {
            let id = (i + 1).to_string();
            let part = parts.remove(&id);
            // Counted like a single PATCH's answer: a 412 part is a conflict
            // although the `$batch` call itself answered 200.
            self.shared.sender.observe_operation(&OperationEvent {
                method: "PATCH",
                status: part.as_ref().map(|p| p.status),
            });
            let result = match part {
                Some(part) => outcome(&part, &op.key, &op.if_match),
                None => Err(unanswered(&op.key, &id)),
            };
            self.answer(op, result, true);
        }
    }

    /// The batch call (begun at `started`, for the log): its parts by
    /// Content-ID. An answer whose Content-IDs do not match the requests
    /// one to one is refused whole, so every order of the batch is retried
    /// as not sent (`InvalidResponse`, a transient outcome) rather than
    /// given a result that may be another order's.
    async fn exchange(
        &self,
        ops: &[Pending],
        permit: Permit<'_>,
        started: Instant,
    ) -> Result<HashMap<String, BatchResponse>, D365Error> {
        let requests: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| BatchRequest {
                content_id: (i + 1).to_string(),
                url: &op.url,
                if_match: op.if_match.as_str(),
                body: &op.body,
            })
            .collect();
        let request = ODataRequest {
            method: Method::POST,
            url: self.shared.url.clone(),
            key: None,
            if_match: None,
            body: Some(batch::build(&requests)),
        };
        let answer = self
            .shared
            .sender
            .execute_permitted(permit, &request)
            .await?;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (operations, status) = (ops.len(), answer.status);
        tracing::info!(operations, status, duration_ms, "D365 batch");
        let content_type = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ids: Vec<String> = (1..=ops.len()).map(|i| i.to_string()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        batch::parse(content_type, &answer.body)
            .and_then(|parts| batch::by_content_id(parts, &ids))
            .map_err(|e| {
                let message = format!(
                    "$batch of {} PATCHes: answer refused ({e}); none of them counts as written, each is retried",
                    ops.len()
                );
                D365Error::invalid(message).caused_by(e)
            })
    }

    /// Logs one operation's result like a single request's, and hands it
    /// over; a 429 answered to one operation pauses the connection when
    /// `pause`.
    fn answer(&self, op: Pending, result: Reply, pause: bool) {
        let etag_sent = op.if_match.as_str();
        match &result {
            Ok(outcome) => {
                let etag_received = outcome.etag().map(ETag::as_str).unwrap_or("");
                let status: u16 = match outcome {
                    PatchOutcome::Entity(_) => 200,
                    PatchOutcome::NoContent { .. } => 204,
                };
                tracing::info!(method = "PATCH", key = %op.key, status, etag_sent, etag_received, batch = true, "D365 request");
            }
            Err(e) => {
                if let Some(delay) = e.retry_after().filter(|_| pause) {
                    self.shared.sender.pause(delay);
                }
                tracing::info!(method = "PATCH", key = %op.key, status = e.status_code(), etag_sent, etag_received = "", batch = true, error = %e, "D365 request refused");
            }
        }
        // The caller may have gone (a cancelled reconcile); the write stands.
        let _ = op.reply.send(result);
    }
}

/// An operation the batch answer left out: ASP.NET OData stops at the
/// first failed changeset unless it honours `odata.continue-on-error`
/// [obs][spec], so the PATCH was most likely never run. Not sent, never
/// written: `Unavailable`, retried like any other transient failure.
fn unanswered(key: &OrderKey, content_id: &str) -> D365Error {
    D365Error::unavailable(
        None,
        format!(
            "PATCH {key} not sent: the $batch answer has no part for it (Content-ID {content_id}; processing stopped at an earlier failed changeset); retried"
        ),
    )
}

/// What one part means for the PATCH of `key`: the same mapping as a
/// single request's (`D365Error::from_odata_response`), so a 412 part is a
/// `Conflict` and a 500 `AxODataWriteException` part `Rejected`.
fn outcome(part: &BatchResponse, key: &OrderKey, if_match: &ETag) -> Reply {
    if (200..300).contains(&part.status) {
        let json = json_object(&part.body);
        return Ok(PatchOutcome::from_answer(part.status, &part.headers, json));
    }
    let ctx = ResponseContext {
        method: "PATCH",
        key: Some(key),
        if_match: Some(if_match),
    };
    Err(D365Error::from_odata_response(
        &ctx,
        part.status,
        &part.headers,
        &part.body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::d365::batch::tests::{ANSWER, ANSWER_TYPE};

    #[test]
    fn parts_mean_what_single_answers_mean() {
        let parts = batch::parse(ANSWER_TYPE, ANSWER.as_bytes()).unwrap();
        let key = OrderKey::new("usmf", "SO-1");
        let sent = ETag::parse("W/\"old\"").unwrap();
        let ok = outcome(&parts[0], &key, &sent).unwrap();
        assert_eq!(ok.etag().map(ETag::as_str), Some("W/\"new\""));
        match outcome(&parts[1], &key, &sent) {
            Err(D365Error::Conflict {
                status: 412,
                sent_etag,
                message,
            }) => {
                assert_eq!(sent_etag, "W/\"old\"");
                assert!(message.contains("The record has been changed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match outcome(&parts[2], &key, &sent) {
            Err(D365Error::Rejected {
                status: 500,
                message,
            }) => {
                assert!(message.contains("Write failed"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unanswered_operation_is_not_sent_and_retried() {
        let err = unanswered(&OrderKey::new("usmf", "SO-3"), "3");
        assert!(
            matches!(err, D365Error::Unavailable { status: None, .. }),
            "{err:?}"
        );
        assert!(err.is_transient());
        let text = err.to_string();
        assert!(text.contains("PATCH usmf/SO-3 not sent"), "{text}");
        assert!(text.contains("Content-ID 3"), "{text}");
    }
}
