//! What the index holds in memory, counted from its structures: the bytes of every allocation
//! it owns (lengths and capacities times element sizes, hash tables by their buckets), without
//! the allocator's rounding. Allocations shared by many tenants (pattern strings of a load,
//! compiled regexes) are not counted. This is how the benchmark reports `bytes_per_action`:
//! measured this way it is exact and costs nothing while matching, where counting every
//! allocation would put a contended atomic on every allocation of every thread.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::mem::size_of;

/// Heap bytes an owner holds.
pub trait HeapBytes {
    fn heap_bytes(&self) -> usize;
}

/// A hash table's allocation: its buckets (entries and control bytes), as hashbrown sizes them.
pub fn table_bytes<K, V, S: BuildHasher>(map: &HashMap<K, V, S>) -> usize {
    let capacity = map.capacity();
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * size_of::<(K, V)>() + buckets + 16
}

/// A boxed slice's allocation plus what its elements hold.
pub fn slice_bytes<T: HeapBytes>(items: &[T]) -> usize {
    size_of_val(items) + items.iter().map(HeapBytes::heap_bytes).sum::<usize>()
}

impl HeapBytes for Box<str> {
    fn heap_bytes(&self) -> usize {
        self.len()
    }
}

impl HeapBytes for u32 {
    fn heap_bytes(&self) -> usize {
        0
    }
}
