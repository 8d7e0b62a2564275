//! The order table: a `BTreeMap` behind a `parking_lot::RwLock`, keyed by
//! (lower-case dataAreaId, upper-case SalesOrderNumber) so collection pages come out in
//! key order and single reads are a short read-lock lookup. Rows are
//! `Arc`s, so the snapshot `reset` returns to shares every unchanged row
//! with the live table instead of holding a second copy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use serde_json::Value;

use crate::entity::{EntityError, Order, make_etag};

/// Order key: dataAreaId lower-case (matched case-insensitively [obs]) and
/// SalesOrderNumber upper-case: F&O's unique index compares string keys
/// case-insensitively (SQL collation) [unverified, likely], so two
/// spellings are one order. The order keeps its own spelling.
pub type Key = (String, String);

/// Builds the store key from URL or API input.
pub fn key(area: &str, number: &str) -> Key {
    (area.to_lowercase(), number.to_uppercase())
}

/// The order `number` names in `area`: whatever its case, or, with
/// `exact` (the `caseSensitiveOrderNumbers` switch), only when spelled as
/// stored.
pub fn find<'a>(table: &'a Table, area: &str, number: &str, exact: bool) -> Option<&'a Order> {
    table
        .get(&key(area, number))
        .map(|o| &**o)
        .filter(|o| !exact || o.number() == number)
}

pub type Table = BTreeMap<Key, Arc<Order>>;

pub struct Store {
    table: RwLock<Table>,
    /// The seed table `reset` goes back to (rows shared with the live table).
    initial: Mutex<Table>,
    /// Global version counter, never reset: a write never yields an ETag
    /// seen before (reset restores seed rows with their seed ETags).
    version: AtomicU64,
    rec_id: AtomicU64,
}

impl Store {
    pub fn new<'a>(
        initial: impl IntoIterator<Item = &'a Value>,
        generated: impl Iterator<Item = Value>,
    ) -> Result<Store, EntityError> {
        let store = Store {
            table: RwLock::new(BTreeMap::new()),
            initial: Mutex::new(Table::new()),
            version: AtomicU64::new(1),
            rec_id: AtomicU64::new(5_637_144_576),
        };
        {
            let mut t = store.table.write();
            for e in initial {
                store.upsert(&mut t, e)?;
            }
            for e in generated {
                store.upsert(&mut t, &e)?;
            }
            *store.initial.lock() = t.clone();
        }
        Ok(store)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Table> {
        self.table.read()
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write()
    }

    /// A fresh ETag for a record.
    pub fn next_etag(&self, rec_id: u64) -> String {
        make_etag(rec_id, self.version.fetch_add(1, Ordering::Relaxed))
    }

    /// Inserts or replaces an order from JSON; a replaced order keeps its
    /// record id and gets a new ETag. Returns its key.
    pub fn upsert(&self, table: &mut Table, entity: &Value) -> Result<Key, EntityError> {
        let mut order = Order::from_json(entity)?;
        let k = key(order.area(), order.number());
        order.rec_id = match table.get(&k) {
            Some(old) => old.rec_id,
            None => self.rec_id.fetch_add(1, Ordering::Relaxed),
        };
        order.etag = self.next_etag(order.rec_id);
        table.insert(k.clone(), Arc::new(order));
        Ok(k)
    }

    /// Puts the seed orders back, with their initial ETags (same content,
    /// same version).
    pub fn reset(&self) {
        let initial = self.initial.lock().clone();
        *self.table.write() = initial;
    }
}
