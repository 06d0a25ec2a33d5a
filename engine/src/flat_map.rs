//! An immutable hash map whose slot for a key can be asked for (prefetched) before it is read.
//!
//! The engine's maps are built once and only read afterwards (a change builds a new one), and
//! matching many events at once wants to start the memory reads of each lookup early, while it
//! works on other events (see `batch`). A general-purpose table hides where a key lives; this
//! one is plain open addressing with linear probing: a slot's tag (a 32-bit piece of the hash,
//! never 0) sits in one array and its entry in another, so a lookup that misses reads a line of
//! tags and no keys at all.

use std::borrow::Borrow;
use std::hash::{BuildHasher, BuildHasherDefault, Hash};

use prefetch_index::prefetch_index;
use rustc_hash::FxHasher;

/// The largest share of slots in use, 3/4: probes stay short and the tables stay small.
const LOAD_NUMERATOR: usize = 3;
const LOAD_DENOMINATOR: usize = 4;

#[derive(Debug, Clone)]
pub struct FlatMap<K, V> {
    /// 0 for an empty slot, else the key's tag.
    tags: Box<[u32]>,
    entries: Box<[Option<(K, V)>]>,
    len: usize,
}

impl<K, V> Default for FlatMap<K, V> {
    fn default() -> Self {
        Self {
            tags: Box::new([]),
            entries: Box::new([]),
            len: 0,
        }
    }
}

fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    BuildHasherDefault::<FxHasher>::default().hash_one(key)
}

/// A slot's tag: the hash's high half (the low half picks the slot), never 0.
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
}

impl<K: Hash + Eq, V> FlatMap<K, V> {
    /// A map of `entries`; when a key repeats, the last entry wins.
    pub fn from_entries(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        let entries: Vec<(K, V)> = entries.into_iter().collect();
        if entries.is_empty() {
            return Self::default();
        }
        let capacity = (entries.len() * LOAD_DENOMINATOR)
            .div_ceil(LOAD_NUMERATOR)
            .next_power_of_two();
        let mut map = Self {
            tags: vec![0; capacity].into(),
            entries: std::iter::repeat_with(|| None).take(capacity).collect(),
            len: 0,
        };
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }

    fn insert(&mut self, key: K, value: V) {
        let hash = hash_of(&key);
        let tag = tag_of(hash);
        let mask = self.tags.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            if self.tags[at] == 0 {
                self.tags[at] = tag;
                self.entries[at] = Some((key, value));
                self.len += 1;
                return;
            }
            if self.tags[at] == tag
                && let Some((existing, old)) = &mut self.entries[at]
                && *existing == key
            {
                *old = value;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.len == 0 {
            return None;
        }
        let hash = hash_of(key);
        let tag = tag_of(hash);
        let mask = self.tags.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            match self.tags[at] {
                0 => return None,
                found if found == tag => {
                    if let Some((existing, value)) = &self.entries[at]
                        && existing.borrow() == key
                    {
                        return Some(value);
                    }
                }
                _ => {}
            }
            at = (at + 1) & mask;
        }
    }

    /// Asks for the memory a lookup of `key` starts with: its first tag and entry.
    pub fn prefetch<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.len == 0 {
            return;
        }
        let at = hash_of(key) as usize & (self.tags.len() - 1);
        prefetch_index(&self.tags, at);
        prefetch_index(&self.entries, at);
    }
}

impl<K, V> FlatMap<K, V> {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().flatten().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// The bytes of its two arrays.
    pub fn heap_bytes(&self) -> usize {
        size_of_val(&*self.tags) + size_of_val(&*self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_only_those() {
        for size in [0usize, 1, 2, 3, 7, 100, 1000] {
            let map = FlatMap::from_entries((0..size).map(|k| (k * 7, k)));
            assert_eq!(map.iter().count(), size);
            for k in 0..size {
                assert_eq!(map.get(&(k * 7)), Some(&k), "size {size}");
                assert_eq!(map.get(&(k * 7 + 1)), None, "size {size}");
                map.prefetch(&(k * 7));
            }
            assert_eq!(map.iter().count(), size);
        }
    }

    #[test]
    fn string_keys_are_found_by_str_and_the_last_entry_wins() {
        let map: FlatMap<std::sync::Arc<str>, u32> =
            FlatMap::from_entries([("a.b".into(), 1), ("c".into(), 2), ("a.b".into(), 3)]);
        assert_eq!(map.iter().count(), 2);
        assert_eq!(map.get("a.b"), Some(&3));
        assert_eq!(map.get("c"), Some(&2));
        assert_eq!(map.get("d"), None);
    }
}
