//! Writes Events the way kube-runtime's recorder does — a new Event, or a
//! repeat of one (same type, action, reason and object within
//! [`SERIES_TTL`]) as a PATCH of its `series` count — with a cache that
//! costs O(1) per Event. kube-runtime's scans every cached Event on every
//! publish, behind one lock, and keeps each whole: after 10,000 orders were
//! updated that was tens of MiB held for six minutes (issue 12).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use serde_json::json;

use crate::locks::lock;

/// How long a repeat counts into its first Event's series (kube-runtime's
/// figure).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);

/// How often Events past [`SERIES_TTL`] leave the cache.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Publishes Events; cheap to clone (the cache is shared).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    cache: Arc<Mutex<Series>>,
    writes: ApiWrites,
}

/// Status patches and Events in flight at once, whatever
/// `--max-concurrent-reconciles` says.
pub const MAX_API_WRITES: usize = 64;

/// The bound on the operator's concurrent writes to the API server. Each
/// write in flight is an HTTP/1.1 connection of kube's pool (no
/// multiplexing), which stays open, with its TLS and hyper buffers, once
/// idle: 1,024 reconciles in flight (bulk mode) left 1,100 connections and
/// about 40 MiB behind them. The API server gains nothing past a few dozen
/// concurrent writes; D365 requests are not bounded by it.
#[derive(Clone)]
pub struct ApiWrites(Arc<tokio::sync::Semaphore>);

impl Default for ApiWrites {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(MAX_API_WRITES)))
    }
}

impl ApiWrites {
    /// Waits for a turn; the write is sent while the permit lives.
    pub async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        // The semaphore is never closed.
        self.0
            .acquire()
            .await
            .expect("the API write limiter is never closed")
    }
}

/// The Events published within [`SERIES_TTL`], by a hash of what makes a
/// repeat: its name and count, nothing else.
struct Series {
    by_key: HashMap<u64, Published>,
    next_prune: Instant,
}

struct Published {
    name: Box<str>,
    count: i32,
    last: Instant,
}

impl Series {
    fn prune(&mut self, now: Instant) {
        if now >= self.next_prune {
            self.by_key
                .retain(|_, p| now.duration_since(p.last) < SERIES_TTL);
            crate::maps::shrink_when_sparse(&mut self.by_key);
            self.next_prune = now + PRUNE_EVERY;
        }
    }
}

impl Recorder {
    /// The write limiter its Events share with the status patches.
    pub fn writes(&self) -> &ApiWrites {
        &self.writes
    }

    pub fn new(client: kube::Client, reporter: Reporter, writes: ApiWrites) -> Self {
        Self {
            client,
            reporter,
            writes,
            cache: Arc::new(Mutex::new(Series {
                by_key: HashMap::new(),
                next_prune: Instant::now() + PRUNE_EVERY,
            })),
        }
    }

    /// Writes `event` about `regarding`: a new Event, or the next count of
    /// the series it repeats.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Instant::now();
        let key = repeat_key(event, regarding);
        let repeat = {
            let mut cache = lock(&self.cache);
            cache.prune(now);
            cache
                .by_key
                .get(&key)
                .filter(|p| now.duration_since(p.last) < SERIES_TTL)
                .map(|p| (p.name.clone(), p.count + 1))
        };
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let stamp = MicroTime(jiff::Timestamp::now());
        let _turn = self.writes.permit().await;
        let (name, count) = match repeat {
            Some((name, count)) => {
                let series = json!({"series": {"count": count, "lastObservedTime": stamp}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                (name, count)
            }
            None => {
                let new = self.new_event(event, regarding, stamp);
                let name = new.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &new).await?;
                (name.into_boxed_str(), 1)
            }
        };
        let published = Published {
            name,
            count,
            last: now,
        };
        lock(&self.cache).by_key.insert(key, published);
        Ok(())
    }

    /// A new events.k8s.io/v1 Event, named after the object and the time.
    fn new_event(&self, event: &Event, regarding: &ObjectReference, stamp: MicroTime) -> K8sEvent {
        let controller = &self.reporter.controller;
        let object = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", stamp.0.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            event_time: Some(stamp),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            type_: Some(type_name(event.type_).into()),
            ..K8sEvent::default()
        }
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// What makes an Event a repeat of another, as kube-runtime's recorder has
/// it: type, action, reason, the object (and a related one); not the note.
fn repeat_key(event: &Event, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    type_name(event.type_).hash(&mut hasher);
    event.action.hash(&mut hasher);
    event.reason.hash(&mut hasher);
    for reference in std::iter::once(regarding).chain(event.secondary.as_ref()) {
        reference.api_version.hash(&mut hasher);
        reference.kind.hash(&mut hasher);
        reference.namespace.hash(&mut hasher);
        reference.name.hash(&mut hasher);
        reference.uid.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;
