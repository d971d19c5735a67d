//! Bounded memory of what a session has seen (ids, tokens, ciphertexts, peer keys), so replays
//! and duplicates are recognised without growing forever: oldest entries are evicted first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// An insertion-ordered map that forgets its oldest entries beyond `cap`.
#[derive(Debug)]
pub(super) struct Bounded<K, V> {
    order: VecDeque<K>,
    map: HashMap<K, V>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> Bounded<K, V> {
    /// An empty memory of at most `cap` entries.
    pub(super) fn new(cap: usize) -> Self {
        Self {
            order: VecDeque::new(),
            map: HashMap::new(),
            cap: cap.max(1),
        }
    }

    /// Remembers `k` (replacing its value if known).
    pub(super) fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// The value remembered for `k`.
    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    /// The value remembered for `k`, mutably.
    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k)
    }

    /// True when `k` is remembered.
    pub(super) fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_entries_are_forgotten_first() {
        let mut b = Bounded::new(2);
        b.insert("a", 1);
        b.insert("b", 2);
        b.insert("a", 3);
        assert_eq!(b.get(&"a"), Some(&3));
        b.insert("c", 4);
        assert!(!b.contains(&"a"));
        assert!(b.contains(&"b") && b.contains(&"c"));
    }
}
