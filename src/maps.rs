//! Hash maps that give room back: a map that held many entries once (an
//! outage's failing orders, a deleted namespace) keeps its capacity
//! forever unless told otherwise.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

/// Halves a map's room once it is at most a quarter full: amortised O(1)
/// per removal, and a map emptied after a burst holds no room for it.
pub(crate) fn shrink_when_sparse<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// One shared copy of each name that many entries repeat (namespaces,
/// connections, companies): thousands of orders hold one `Arc` each.
#[derive(Debug, Default)]
pub(crate) struct Names(HashSet<Arc<str>>);

impl Names {
    /// The shared copy of `name`, made on first sight.
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let new: Arc<str> = name.into();
        self.0.insert(new.clone());
        new
    }

    /// Forgets the names no entry holds any more (a deleted namespace).
    pub fn forget_unused(&mut self) {
        self.0.retain(|name| Arc::strong_count(name) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_emptied_after_a_burst_gives_its_room_back() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        for i in 0..10_000 {
            map.remove(&i);
            shrink_when_sparse(&mut map);
        }
        assert!(map.capacity() <= 64, "{} of {full} left", map.capacity());
        for i in 0..100 {
            map.insert(i, i);
        }
        assert_eq!(map.len(), 100);
    }

    #[test]
    fn names_are_shared_and_forgotten_once_unused() {
        let mut names = Names::default();
        let a = names.intern("orders");
        let b = names.intern("orders");
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        let kept = names.intern("kept");
        names.forget_unused();
        assert_eq!(names.0.len(), 1);
        assert!(Arc::ptr_eq(&kept, &names.intern("kept")));
    }
}
