//! Hash maps that give room back: a map that held many entries once (an
//! outage's failing orders, a deleted namespace) keeps its capacity
//! forever unless told otherwise.

use std::collections::HashMap;
use std::hash::Hash;

/// Halves a map's room once it is at most a quarter full: amortised O(1)
/// per removal, and a map emptied after a burst holds no room for it.
pub(crate) fn shrink_when_sparse<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
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
}
