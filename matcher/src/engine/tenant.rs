//! One tenant's actions, filed so that an event looks only at actions that can match its type.
//!
//! An index is immutable once built: readers hold a snapshot while a writer builds the next one.
//! An update copies only the maps' entries (shared buckets) and rebuilds the buckets it touches,
//! so its cost follows the size of those buckets, not of the tenant.
//!
//! Every bucket is kept in dispatch order, so an event's matches come out as a few sorted runs
//! (one per bucket it reads) that a merge puts in order, rather than a heap of actions to sort:
//! that is what keeps a tenant whose events match a thousand actions fast.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::action::{CompiledAction, Matched, PathTable};
use super::event::EventRef;
use super::json::{Found, Malformed};
use super::pattern::{PatternKind, first_segment, kind_of, matches_pattern};

/// Actions filed under one pattern, in dispatch order.
type Bucket = Arc<[Arc<CompiledAction>]>;

/// Wildcard patterns sharing a filing place, each with the actions that use it.
type Groups = Arc<[(Arc<str>, Bucket)]>;

/// Actions by pattern, while an index is being built.
type Building = FxHashMap<Arc<str>, Vec<Arc<CompiledAction>>>;

#[derive(Debug, Clone, Default)]
pub struct TenantIndex {
    /// Exact patterns, by event type.
    exact: FxHashMap<Arc<str>, Bucket>,
    /// Wildcard patterns whose first segment is literal, by that segment.
    by_first: FxHashMap<Arc<str>, Groups>,
    /// Wildcard patterns starting with a wildcard.
    other: Groups,
    /// Actions matching every type.
    everything: Bucket,
    pub paths: Arc<PathTable>,
    /// Live actions in this index.
    pub len: usize,
    /// Wildcard patterns and regex conditions, for the per-tenant budget.
    pub costly: usize,
    /// Condition leaf slots handed out so far (the size of an event's memo).
    pub leaf_slots: u32,
}

thread_local! {
    /// Per-thread memo of leaf results for the event being matched, reused between events.
    static MEMO: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn empty_bucket() -> Bucket {
    Arc::from(Vec::new())
}

/// A bucket of `actions`, put in dispatch order. (The stable sort takes linear time on an
/// update's input: the old bucket in order with one action appended.)
fn bucket(mut actions: Vec<Arc<CompiledAction>>) -> Bucket {
    actions.sort_by(|a, b| a.dispatch_cmp(b));
    actions.into()
}

impl TenantIndex {
    pub fn new() -> Self {
        Self {
            everything: empty_bucket(),
            other: Arc::from(Vec::new()),
            ..Default::default()
        }
    }

    /// Builds an index from scratch, for loading many actions at once.
    pub fn build(actions: Vec<Arc<CompiledAction>>, paths: PathTable, leaf_slots: u32) -> Self {
        let mut exact = Building::default();
        let mut by_first: FxHashMap<Arc<str>, Building> = FxHashMap::default();
        let mut other = Building::default();
        let mut everything = Vec::new();
        let mut costly = 0;
        for action in &actions {
            costly += action.costly_parts();
            for pattern in unique_patterns(action) {
                match kind_of(pattern) {
                    // The pattern is the type: the key shares the action's copy.
                    PatternKind::Exact(_) => exact
                        .entry(pattern.clone())
                        .or_default()
                        .push(action.clone()),
                    PatternKind::Everything => everything.push(action.clone()),
                    PatternKind::FirstSegment(first) => by_first
                        .entry(first.into())
                        .or_default()
                        .entry(pattern.clone())
                        .or_default()
                        .push(action.clone()),
                    PatternKind::Other => other
                        .entry(pattern.clone())
                        .or_default()
                        .push(action.clone()),
                }
            }
        }
        let groups =
            |map: Building| -> Groups { map.into_iter().map(|(p, v)| (p, bucket(v))).collect() };
        Self {
            exact: exact.into_iter().map(|(k, v)| (k, bucket(v))).collect(),
            by_first: by_first.into_iter().map(|(k, v)| (k, groups(v))).collect(),
            other: groups(other),
            everything: bucket(everything),
            paths: Arc::new(paths),
            len: actions.len(),
            costly,
            leaf_slots,
        }
    }

    /// The next index: `old` (if any) taken out and `new` (if any) put in.
    pub fn updated(
        &self,
        old: Option<&CompiledAction>,
        new: Option<&Arc<CompiledAction>>,
        paths: Arc<PathTable>,
        leaf_slots: u32,
    ) -> Self {
        let mut next = self.clone();
        next.paths = paths;
        next.leaf_slots = leaf_slots;
        if let Some(old) = old {
            next.len -= 1;
            next.costly -= old.costly_parts();
            for pattern in unique_patterns(old) {
                next.edit(pattern, |bucket| {
                    bucket.iter().filter(|a| a.id != old.id).cloned().collect()
                });
            }
        }
        if let Some(new) = new {
            next.len += 1;
            next.costly += new.costly_parts();
            for pattern in unique_patterns(new) {
                next.edit(pattern, |bucket| {
                    bucket
                        .iter()
                        .cloned()
                        .chain(std::iter::once(new.clone()))
                        .collect()
                });
            }
        }
        next
    }

    /// Replaces the bucket of `pattern` with `change(bucket)`, dropping it when empty.
    fn edit(
        &mut self,
        pattern: &str,
        change: impl Fn(&[Arc<CompiledAction>]) -> Vec<Arc<CompiledAction>>,
    ) {
        match kind_of(pattern) {
            PatternKind::Exact(t) => {
                let current = self.exact.get(t).cloned().unwrap_or_else(empty_bucket);
                let next = change(&current);
                if next.is_empty() {
                    self.exact.remove(t);
                } else {
                    self.exact.insert(t.into(), bucket(next));
                }
            }
            PatternKind::Everything => self.everything = bucket(change(&self.everything)),
            PatternKind::FirstSegment(first) => {
                let groups = self
                    .by_first
                    .get(first)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(Vec::new()));
                let next = edit_groups(&groups, pattern, change);
                if next.is_empty() {
                    self.by_first.remove(first);
                } else {
                    self.by_first.insert(first.into(), next);
                }
            }
            PatternKind::Other => self.other = edit_groups(&self.other, pattern, change),
        }
    }

    /// Appends the actions whose type patterns, source and conditions accept `event`, in no
    /// particular order and possibly repeated (an action with two matching patterns).
    pub fn candidates<'s>(
        &'s self,
        event_type: &str,
        out: &mut impl Extend<&'s Arc<CompiledAction>>,
    ) {
        if let Some(bucket) = self.exact.get(event_type) {
            out.extend(bucket.iter());
        }
        if !self.by_first.is_empty()
            && let Some(groups) = self.by_first.get(first_segment(event_type))
        {
            for (pattern, bucket) in groups.iter() {
                if matches_pattern(pattern, event_type) {
                    out.extend(bucket.iter());
                }
            }
        }
        for (pattern, bucket) in self.other.iter() {
            if matches_pattern(pattern, event_type) {
                out.extend(bucket.iter());
            }
        }
        out.extend(self.everything.iter());
    }

    /// The actions that match `event`, in dispatch order, each once.
    pub fn matches(&self, event: &EventRef<'_>, out: &mut Vec<Matched>) -> Result<(), Malformed> {
        let mut found = Found::default();
        if !self.paths.is_empty() {
            event.extract(&self.paths.data, &self.paths.metadata, &mut found)?;
        }
        self.select(event, &found, out);
        Ok(())
    }

    /// The actions that match `event`, given the values `found` under this index's paths.
    pub fn select<'a>(&self, event: &EventRef<'a>, found: &Found<'a>, out: &mut Vec<Matched>) {
        let mut candidates: smallvec::SmallVec<[&Arc<CompiledAction>; 32]> =
            smallvec::SmallVec::new();
        self.candidates(event.event_type, &mut candidates);
        MEMO.with_borrow_mut(|memo| {
            memo.clear();
            memo.resize(self.leaf_slots as usize, 0);
            candidates.retain(|a| a.accepts(event, found, memo));
        });
        if candidates.len() > 1 {
            // Sorted runs, one per bucket read: the stable sort finds the runs and merges them.
            // An action filed under two patterns that both matched comes out twice, side by side.
            candidates.sort_by(|a, b| a.dispatch_cmp(b));
            candidates.dedup_by(|a, b| a.id == b.id);
        }
        out.extend(candidates.iter().map(|a| a.matched()));
    }
}

/// An action's patterns without repeats (a repeated pattern would file it twice).
fn unique_patterns(action: &CompiledAction) -> impl Iterator<Item = &Arc<str>> {
    action
        .patterns
        .iter()
        .enumerate()
        .filter(|(i, p)| !action.patterns[..*i].contains(p))
        .map(|(_, p)| p)
}

fn edit_groups(
    groups: &Groups,
    pattern: &str,
    change: impl Fn(&[Arc<CompiledAction>]) -> Vec<Arc<CompiledAction>>,
) -> Groups {
    let mut next: Vec<(Arc<str>, Bucket)> = groups.to_vec();
    match next.iter().position(|(p, _)| &**p == pattern) {
        Some(i) => {
            let bucket = change(&next[i].1);
            if bucket.is_empty() {
                next.remove(i);
            } else {
                next[i].1 = self::bucket(bucket);
            }
        }
        None => {
            let bucket = change(&[]);
            if !bucket.is_empty() {
                next.push((pattern.into(), self::bucket(bucket)));
            }
        }
    }
    next.into()
}
