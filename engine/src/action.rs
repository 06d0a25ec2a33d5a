//! An action as the engine holds it: only what matching and dispatch order need.

use std::cmp::Ordering;
use std::sync::Arc;

use herald_common::action::{ActionMatching, ActionMode};
use herald_common::condition::{Condition, Operator};
use herald_common::ids::ActionId;
use rustc_hash::FxHashMap;

use super::condition::{Compiled, Field, Values, compile_leaf};
use super::event::EventRef;
use super::json::{Found, PathTrie, Val};
use super::memory::{HeapBytes, slice_bytes, table_bytes};

/// The paths a tenant's conditions read, each with a small id.
#[derive(Debug, Clone, Default)]
pub struct PathTable {
    ids: FxHashMap<Box<str>, u32>,
    pub data: PathTrie,
    pub metadata: PathTrie,
}

impl PathTable {
    /// The id of `path` (`data.x.y` or `metadata.k`), registering it when new.
    pub fn id(&mut self, path: &str) -> u32 {
        if let Some(id) = self.ids.get(path) {
            return *id;
        }
        let id = self.ids.len() as u32;
        let mut segments = path.split('.');
        let root = segments.next().unwrap_or_default();
        let rest: smallvec::SmallVec<[&str; 8]> = segments.collect();
        match root {
            "metadata" => self.metadata.insert(&rest, id),
            _ => self.data.insert(&rest, id),
        }
        self.ids.insert(path.into(), id);
        id
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl HeapBytes for PathTable {
    fn heap_bytes(&self) -> usize {
        table_bytes(&self.ids)
            + self.ids.keys().map(|k| k.len()).sum::<usize>()
            + self.data.heap_bytes()
            + self.metadata.heap_bytes()
    }
}

impl HeapBytes for CompiledAction {
    fn heap_bytes(&self) -> usize {
        // The pattern list may be shared; counted here as if it were not.
        self.name.len() + 16 + size_of_val(&*self.patterns) + slice_bytes(&self.conditions)
    }
}

/// What the engine keeps of an action's definition: everything that decides whether and in
/// which order it matches, nothing of its handler. Loading builds these as it reads, so a
/// million actions never hold a million handlers in memory at once.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchSpec {
    pub name: String,
    pub priority: i32,
    pub mode: ActionMode,
    pub max_attempts: u32,
    /// Wildcard patterns and regex conditions (see `ActionMatching::costly_parts`).
    pub costly: usize,
    pub source: Option<String>,
    pub event_types: Vec<String>,
    pub conditions: Vec<Condition>,
}

impl From<ActionMatching> for MatchSpec {
    fn from(spec: ActionMatching) -> Self {
        Self {
            costly: spec.costly_parts(),
            max_attempts: spec.retry.max_attempts(),
            priority: spec.priority.0,
            mode: spec.mode,
            name: spec.name,
            source: spec.source,
            event_types: spec.event_types,
            conditions: spec.conditions,
        }
    }
}

impl From<&ActionMatching> for MatchSpec {
    fn from(spec: &ActionMatching) -> Self {
        Self::from(spec.clone())
    }
}

/// A matched action: what dispatch needs of it. A plain value, so producing a thousand
/// matches touches no reference counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub id: ActionId,
    pub priority: i32,
    pub mode: ActionMode,
    /// Attempts an execution of this action may make.
    pub max_attempts: u32,
}

/// An action compiled for matching.
#[derive(Debug)]
pub struct CompiledAction {
    pub id: ActionId,
    pub name: Box<str>,
    pub priority: i32,
    pub mode: ActionMode,
    /// Attempts an execution of this action may make.
    pub max_attempts: u32,
    /// Wildcard patterns and regex conditions (see `ActionMatching::costly_parts`).
    costly: u16,
    /// Priority and the first 28 bytes of the name, so comparisons rarely touch the name.
    order: [u64; 4],
    /// Shared with other actions using the same pattern when loaded together.
    pub patterns: Arc<[Arc<str>]>,
    /// All must hold. The source filter, when there is one, is the first: a leaf like any
    /// other (which keeps this struct small enough for a smaller allocation class).
    pub conditions: Box<[Compiled]>,
}

impl CompiledAction {
    /// Compiles `spec`, registering its paths in `paths`. `patterns` gives the shared copy of a
    /// list of patterns (a load keeps one copy of each for all the actions using it).
    pub fn compile<'c>(
        id: ActionId,
        spec: &'c MatchSpec,
        paths: &mut PathTable,
        slot: &mut impl FnMut(&'c Condition) -> u32,
        regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
        patterns: &mut impl FnMut(&[String]) -> Arc<[Arc<str>]>,
    ) -> Self {
        // The source filter is the test `source equals ...`, not shared with other leaves
        // (evaluated each time: one comparison).
        let source = spec.source.as_deref().map(|source| {
            let (field, test) = compile_leaf(
                "source",
                Operator::Equals,
                &source.into(),
                &mut |p| paths.id(p),
                regex,
            );
            Compiled::Leaf {
                field,
                test,
                slot: u32::MAX,
            }
        });
        let conditions = source
            .into_iter()
            .chain(
                spec.conditions
                    .iter()
                    .map(|c| Compiled::compile(c, &mut |path| paths.id(path), slot, regex)),
            )
            .collect();
        Self {
            id,
            costly: spec.costly.min(u16::MAX as usize) as u16,
            name: spec.name.as_str().into(),
            priority: spec.priority,
            mode: spec.mode,
            max_attempts: spec.max_attempts,
            order: order_key(spec.priority, &spec.name),
            patterns: patterns(&spec.event_types),
            conditions,
        }
    }

    /// Dispatch order: priority ascending, then name, then id.
    pub fn dispatch_cmp(&self, other: &Self) -> Ordering {
        self.order
            .cmp(&other.order)
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.id.cmp(&other.id))
    }

    pub fn matched(&self) -> Matched {
        Matched {
            id: self.id,
            priority: self.priority,
            mode: self.mode,
            max_attempts: self.max_attempts,
        }
    }

    /// Wildcard patterns and regex conditions: what the per-tenant budget counts.
    pub fn costly_parts(&self) -> usize {
        usize::from(self.costly)
    }

    /// Whether the source filter and every condition hold for `event`.
    pub fn accepts<'a>(&self, event: &EventRef<'a>, found: &Found<'a>, memo: &mut [u8]) -> bool {
        let values = EventValues { event, found };
        self.conditions.iter().all(|c| c.holds(&values, memo))
    }
}

/// `priority` (made unsigned, order kept) in the top 32 bits, then the name's first 28 bytes,
/// big-endian, zero-padded: comparing keys compares priority, then those bytes.
fn order_key(priority: i32, name: &str) -> [u64; 4] {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&((priority as u32) ^ 0x8000_0000).to_be_bytes());
    for (slot, byte) in bytes[4..].iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    let word =
        |i: usize| u64::from_be_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or_default());
    [word(0), word(1), word(2), word(3)]
}

/// Patterns of one action, not shared with any other (for single updates).
pub fn own_patterns(types: &[String]) -> Arc<[Arc<str>]> {
    types.iter().map(|t| Arc::from(t.as_str())).collect()
}

/// The values conditions read: top-level fields from the event, paths from what was found.
pub struct EventValues<'e, 'a> {
    pub event: &'e EventRef<'a>,
    pub found: &'e Found<'a>,
}

impl Values for EventValues<'_, '_> {
    fn any(&self, field: Field, visit: &mut dyn FnMut(&Val<'_>) -> bool) -> bool {
        let mut top = |text: Option<&str>| {
            text.is_some_and(|t| visit(&Val::Str(std::borrow::Cow::Borrowed(t))))
        };
        match field {
            Field::Type => top(Some(self.event.event_type)),
            Field::Source => top(self.event.source),
            Field::Id => top(self.event.id),
            Field::Path(id) => self.found.get(id).any(visit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_like_priority_then_name() {
        let names = [
            (10, "zeta"),
            (-5, "b"),
            (100, "a"),
            (100, "ab"),
            (100, "b"),
            (100, "same-long-prefix-2"),
            (100, "same-long-prefix-10"),
            (200, ""),
        ];
        let mut by_key: Vec<_> = names
            .iter()
            .map(|(p, n)| (order_key(*p, n), *p, *n))
            .collect();
        by_key.sort();
        let mut expected = names.to_vec();
        expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
        // Keys never contradict the true order; equal keys fall back to the full name.
        for pair in by_key.windows(2) {
            let (a, b) = ((pair[0].1, pair[0].2), (pair[1].1, pair[1].2));
            assert!(pair[0].0 <= pair[1].0, "{a:?} {b:?}");
            if pair[0].0 < pair[1].0 {
                assert!(a.0 < b.0 || (a.0 == b.0 && a.1 < b.1), "{a:?} before {b:?}");
            }
        }
    }
}
