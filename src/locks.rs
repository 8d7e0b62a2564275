//! The crate's one mutex policy: a poisoned lock is used anyway. What the
//! mutexes guard (caches, counters, queues) stays consistent at every
//! unlock, so a panic in one reconcile must not take every later one down.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it if a panic poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
