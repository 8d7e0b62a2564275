//! Coalescing the PATCHes of one connection into `$batch` calls.
//!
//! When many orders change at once, one HTTP call per PATCH is what fills
//! D365's service-protection budget; a `$batch` of many PATCHes counts as
//! one call to the limiter. Callers do not see the difference: each awaits
//! its own `Result`. GETs are never batched (parallel single requests are
//! often faster [doc]).
//!
//! The first PATCH queued starts a timer of `window`; when it fires,
//! everything queued is sent. A queue reaching `max_operations` is sent at
//! once. Sends run in their own task, so a caller that gives up (a
//! cancelled reconcile) cannot tear down a batch that others wait on. A
//! batch of one is still sent as `$batch`: one code path, so what reaches
//! D365 does not depend on timing.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::batch::{self, BatchRequest};
use super::client::PatchOutcome;
use super::settings::BatchSettings;
use super::{D365Client, D365Error, ETag, OrderKey};

type Reply = Result<PatchOutcome, D365Error>;

/// The queue of one connection's PATCHes waiting for their batch.
pub(crate) struct Coalescer {
    settings: BatchSettings,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    /// A flush is scheduled (so later PATCHes join it).
    timer: bool,
}

struct Pending {
    key: OrderKey,
    if_match: ETag,
    url: String,
    body: Vec<u8>,
    reply: oneshot::Sender<Reply>,
}

impl Coalescer {
    pub(crate) fn new(settings: BatchSettings) -> Self {
        Self {
            settings: BatchSettings {
                max_operations: settings.max_operations.max(1),
                ..settings
            },
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Queues one PATCH (`url` absolute, query included) and waits for its
    /// own answer out of the batch.
    pub(crate) async fn patch(
        &self,
        client: &D365Client,
        key: &OrderKey,
        if_match: &ETag,
        url: String,
        body: Vec<u8>,
    ) -> Reply {
        let (reply, answer) = oneshot::channel();
        let full = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.pending.push(Pending {
                key: key.clone(),
                if_match: if_match.clone(),
                url,
                body,
                reply,
            });
            if queue.pending.len() >= self.settings.max_operations {
                Some(std::mem::take(&mut queue.pending))
            } else {
                if !queue.timer {
                    queue.timer = true;
                    tokio::spawn(flush_after(client.clone(), self.settings));
                }
                None
            }
        };
        if let Some(ops) = full {
            tokio::spawn(send(client.clone(), ops));
        }
        answer.await.unwrap_or_else(|_| {
            Err(D365Error::Unavailable {
                status: None,
                message: format!("PATCH {key}: the batch ended without an answer"),
            })
        })
    }

    fn take(&self) -> Vec<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.timer = false;
        std::mem::take(&mut queue.pending)
    }
}

/// Waits out the window, then sends whatever is queued, in batches of at
/// most `max_operations`.
async fn flush_after(client: D365Client, settings: BatchSettings) {
    tokio::time::sleep(settings.window).await;
    let Some(coalescer) = client.batcher() else {
        return;
    };
    let mut ops = coalescer.take();
    while !ops.is_empty() {
        let rest = ops.split_off(ops.len().min(settings.max_operations));
        tokio::spawn(send(client.clone(), ops));
        ops = rest;
    }
}

/// Sends one `$batch` through the client's usual path (limiter, token,
/// one retry on 401, pause on 429) and answers every caller. A failure of
/// the batch call itself is every operation's failure.
async fn send(client: D365Client, ops: Vec<Pending>) {
    let n = ops.len();
    let (content_type, body) = {
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
        batch::build(&requests)
    };
    let started = Instant::now();
    let answer = match client.batch_url() {
        Ok(url) => {
            client
                .execute(Method::POST, url, None, None, Some((content_type, body)))
                .await
        }
        Err(e) => Err(e),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let parts = answer.and_then(|answer| {
        tracing::info!(
            operations = n,
            status = answer.status,
            duration_ms,
            "D365 batch"
        );
        let content_type = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        batch::parse(content_type, &answer.raw).map_err(|why| D365Error::InvalidResponse {
            message: format!("$batch of {n} PATCHes: {why}"),
        })
    });
    let mut parts = match parts {
        Ok(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let id = part.content_id.clone().unwrap_or((i + 1).to_string());
                (id, part)
            })
            .collect::<HashMap<_, _>>(),
        Err(e) => {
            let status = e.status_code();
            tracing::warn!(operations = n, status, duration_ms, error = %e, "D365 batch failed");
            // A 429 on the batch call has paused the connection already.
            for op in ops {
                answer_op(&client, op, Err(e.clone()), false);
            }
            return;
        }
    };
    for (i, op) in ops.into_iter().enumerate() {
        let result = match parts.remove(&(i + 1).to_string()) {
            Some(part) => part.outcome(&op.key, &op.if_match),
            None => Err(D365Error::InvalidResponse {
                message: format!(
                    "$batch: no answer for PATCH {} (Content-ID {})",
                    op.key,
                    i + 1
                ),
            }),
        };
        answer_op(&client, op, result, true);
    }
}

/// Logs one operation's result like a single request's, and hands it over;
/// a 429 answered to one operation pauses the connection when `pause`.
fn answer_op(client: &D365Client, op: Pending, result: Reply, pause: bool) {
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
                client.pause(delay);
            }
            tracing::info!(method = "PATCH", key = %op.key, status = e.status_code(), etag_sent, batch = true, error = %e, "D365 request refused");
        }
    }
    // The caller may have gone (a cancelled reconcile); the write stands.
    let _ = op.reply.send(result);
}
