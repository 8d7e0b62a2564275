//! What happened: the write history (every write accepted or refused, with
//! the If-Match it carried and the ETag current then), a bounded ring of
//! requests, and counters by "METHOD STATUS". Tests use it to prove that no
//! write was accepted on a stale ETag and no concurrent edit was lost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most requests kept in the ring: enough for any test or demo run while
/// bounding memory (~250 bytes a record, so ~50 MiB when full).
pub const REQUEST_RING: usize = 200_000;

/// Who wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteSource {
    /// An OData PATCH (single or in `$batch`).
    Client,
    /// The `conflictRate` fault: another user edited just before a PATCH.
    ConcurrentWriter,
    /// `Emulator::external_write` / the admin API: another user edited.
    External,
    /// `put_order` / `PUT /_emulator/orders`.
    Admin,
}

/// One write attempt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteRecord {
    pub seq: u64,
    pub data_area_id: String,
    pub sales_order_number: String,
    pub source: WriteSource,
    pub if_match: Option<String>,
    /// ETag current when the write was evaluated ("" if the order was absent).
    pub etag_before: String,
    pub etag_after: Option<String>,
    pub accepted: bool,
    pub status: u16,
    pub fields: Map<String, Value>,
    /// Fields the write sent that the `ignoreWrites` fault did not apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    pub via_batch: bool,
    /// When the write took effect, in milliseconds since the Unix epoch:
    /// lets a test compare it with when a writer lost its lease.
    #[serde(default)]
    pub at_ms: u64,
    /// The writer's `User-Agent` (the operator names its replica there).
    #[serde(default)]
    pub agent: Option<String>,
}

/// Which credential a client proved itself with at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GrantKind {
    /// `client_secret` (form or HTTP Basic).
    Secret,
    /// An assertion signed with a registered certificate's key.
    Certificate,
    /// An assertion of a federated credential's issuer (workload identity).
    Federated,
}

/// One issued token: who got it and how, so tests can prove e.g. that a
/// token came from a federated credential and no secret was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub client_id: String,
    pub kind: GrantKind,
}

/// Most grants kept: a bound on memory, far above any test's token count.
const GRANT_RING: usize = 10_000;

/// One HTTP request (admin requests excluded).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub data_area_id: Option<String>,
    pub sales_order_number: Option<String>,
    pub status: u16,
    pub if_match: Option<String>,
    /// Order numbers a collection GET answered (as stored), so a bulk
    /// read counts as a read of each order it returned.
    #[serde(default)]
    pub rows: Vec<String>,
}

#[derive(Default)]
pub struct Journal {
    history: Mutex<Vec<WriteRecord>>,
    seq: AtomicU64,
    requests: Mutex<VecDeque<RequestRecord>>,
    counters: Mutex<BTreeMap<String, u64>>,
    token_requests: AtomicU64,
    grants: Mutex<VecDeque<TokenGrant>>,
}

impl Journal {
    /// Appends a write record, assigning its sequence number. Callers hold
    /// the store lock, so sequence order is the order writes took effect.
    pub fn write(&self, mut rec: WriteRecord) {
        rec.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        rec.at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.history.lock().push(rec);
    }

    pub fn request(&self, rec: RequestRecord) {
        let counter = format!("{} {}", rec.method, rec.status);
        *self.counters.lock().entry(counter).or_default() += 1;
        let mut ring = self.requests.lock();
        if ring.len() >= REQUEST_RING {
            ring.pop_front();
        }
        ring.push_back(rec);
    }

    pub fn token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an issued token.
    pub fn grant(&self, g: TokenGrant) {
        let mut ring = self.grants.lock();
        if ring.len() >= GRANT_RING {
            ring.pop_front();
        }
        ring.push_back(g);
    }

    pub fn grants(&self) -> Vec<TokenGrant> {
        self.grants.lock().iter().cloned().collect()
    }

    pub fn history(&self) -> Vec<WriteRecord> {
        self.history.lock().clone()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.lock().iter().cloned().collect()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.counters.lock().clone()
    }

    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        self.history.lock().clear();
        self.requests.lock().clear();
        self.counters.lock().clear();
        self.token_requests.store(0, Ordering::Relaxed);
        self.grants.lock().clear();
    }
}
