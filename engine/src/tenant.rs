//! One tenant's actions: a compact base plus the changes made since it was built.
//!
//! An index is immutable once built: readers hold a snapshot while a writer builds the next one.
//! A load builds bases only. A live change does not rebuild the base: a removed (or replaced)
//! action is marked in a bit set over the base, and a new or changed one joins a short list of
//! actions kept outside it. When that list or the set grows past a bound, the changes are folded
//! into a new base. So an update costs little even in a tenant of twenty thousand actions, and
//! an event pays for at most a few dozen actions outside the base.

use std::sync::Arc;

use herald_common::action::ActionMode;
use herald_common::ids::ActionId;

use super::action::{CompiledAction, EventValues, Matched, PathTable};
use super::base::{Base, BaseBuilder, Posting};
use super::event::EventRef;
use super::json::{Found, Malformed};
use super::memory::HeapBytes;
use super::pattern::matches_pattern;
use super::prefetch;

/// Base actions that are candidates for an event (filed under its type).
pub type Hits = smallvec::SmallVec<[Posting; 32]>;

/// Actions kept outside the base before the changes are folded in.
const OUTSIDE_MAX: usize = 32;

#[derive(Debug, Clone)]
pub struct TenantIndex {
    base: Arc<Base>,
    /// Base actions removed or replaced since it was built, one bit each (empty when none).
    removed: Arc<[u64]>,
    removed_count: usize,
    /// Actions added or changed since the base was built, in dispatch order.
    outside: Arc<[Arc<CompiledAction>]>,
    pub paths: Arc<PathTable>,
    /// Live actions in this index.
    pub len: usize,
    /// Wildcard patterns and regex conditions, for the per-tenant budget.
    pub costly: usize,
    /// Actions in sync mode.
    pub sync: usize,
    /// Condition leaves numbered so far (the size of an event's memo): the base's, then those
    /// of the actions outside it.
    pub leaf_slots: u32,
}

thread_local! {
    /// Per-thread memo of leaf results for the event being matched, reused between events.
    static MEMO: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Default for TenantIndex {
    fn default() -> Self {
        Self::from_base(Base::default(), PathTable::default())
    }
}

impl TenantIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index of `base` alone.
    pub fn from_base(base: Base, paths: PathTable) -> Self {
        Self::of_base(base, Arc::new(paths))
    }

    fn of_base(base: Base, paths: Arc<PathTable>) -> Self {
        Self {
            len: base.len(),
            costly: base.costly,
            sync: base.sync,
            leaf_slots: base.leaves.len() as u32,
            base: Arc::new(base),
            removed: Arc::from(Vec::new()),
            removed_count: 0,
            outside: Arc::from(Vec::new()),
            paths,
        }
    }

    fn is_removed(&self, action: u32) -> bool {
        self.removed
            .get(action as usize / 64)
            .is_some_and(|word| word & (1 << (action % 64)) != 0)
    }

    /// The name of action `id`, if it is live here.
    pub fn name_of(&self, id: ActionId) -> Option<String> {
        if let Some(action) = self.outside.iter().find(|a| a.id == id) {
            return Some(action.name.to_string());
        }
        self.base
            .find(id)
            .filter(|n| !self.is_removed(*n))
            .map(|n| self.base.name(n).to_owned())
    }

    /// Takes action `id` out, if it is here; whether it was.
    fn take_out(&mut self, id: ActionId) -> bool {
        if let Some(at) = self.outside.iter().position(|a| a.id == id) {
            let mut outside = self.outside.to_vec();
            let old = outside.remove(at);
            self.outside = outside.into();
            self.len -= 1;
            self.costly -= old.costly_parts();
            self.sync -= usize::from(old.mode == ActionMode::Sync);
            return true;
        }
        let Some(number) = self.base.find(id) else {
            return false;
        };
        if self.is_removed(number) {
            return false;
        }
        let mut removed = self.removed.to_vec();
        removed.resize(self.base.len().div_ceil(64), 0);
        removed[number as usize / 64] |= 1 << (number % 64);
        self.removed = removed.into();
        self.removed_count += 1;
        self.len -= 1;
        self.costly -= self.base.costly(number);
        self.sync -= usize::from(self.base.is_sync(number));
        true
    }

    /// The next index, with `action` put in (replacing the action of the same id); whether
    /// that id was already here. `paths` and `leaf_slots` include the new action's.
    pub fn with_put(
        &self,
        action: Arc<CompiledAction>,
        paths: Arc<PathTable>,
        leaf_slots: u32,
    ) -> (Self, bool) {
        let mut next = self.clone();
        let existed = next.take_out(action.id);
        next.paths = paths;
        next.leaf_slots = leaf_slots;
        next.len += 1;
        next.costly += action.costly_parts();
        next.sync += usize::from(action.mode == ActionMode::Sync);
        let mut outside = next.outside.to_vec();
        let at = outside.partition_point(|a| a.dispatch_cmp(&action).is_lt());
        outside.insert(at, action);
        next.outside = outside.into();
        (next.folded_if_due(), existed)
    }

    /// The next index, without action `id`; `None` when it was not here.
    pub fn without(&self, id: ActionId) -> Option<Self> {
        let mut next = self.clone();
        next.take_out(id).then(|| next.folded_if_due())
    }

    fn folded_if_due(self) -> Self {
        if self.outside.len() > OUTSIDE_MAX
            || self.removed_count > OUTSIDE_MAX.max(self.base.len() / 4)
        {
            self.folded()
        } else {
            self
        }
    }

    /// The changes folded into a new base.
    fn folded(&self) -> Self {
        let mut builder = BaseBuilder::from_base(&self.base, |n| self.is_removed(n));
        for action in self.outside.iter() {
            builder.add_compiled(action);
        }
        Self::of_base(builder.finish(), self.paths.clone())
    }

    /// Asks for the structures the index points to (its base and its path tries), without
    /// reading them.
    pub fn prefetch_parts(&self) {
        self.base.prefetch_fields();
        prefetch::at(&self.paths.data);
        prefetch::at(&self.paths.metadata);
    }

    /// Asks for this index's own fields, which span two cache lines.
    pub fn prefetch_fields(&self) {
        prefetch::at(&self.base);
        prefetch::at(&self.paths);
        prefetch::at(&self.removed_count);
        prefetch::at(&self.leaf_slots);
        prefetch::at(&self.outside);
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    /// Asks for the memory matching an event will start from, as soon as the event's tenant
    /// is known, so that it arrives while the rest of the event is read.
    pub fn prefetch(&self) {
        self.prefetch_parts();
        self.prefetch_tries();
    }

    /// Asks for the roots of the path tries (reading the path table, asked for by
    /// [`TenantIndex::prefetch_parts`]).
    pub fn prefetch_tries(&self) {
        self.paths.data.prefetch();
        self.paths.metadata.prefetch();
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
        let mut hits = Hits::new();
        self.base.ranges_for(event.event_type, |postings| {
            hits.extend_from_slice(postings)
        });
        self.base.prefetch(&hits);
        MEMO.with_borrow_mut(|memo| {
            self.clear_memo(memo);
            let values = EventValues { event, found };
            self.turn_down(&mut hits, &values, memo);
            self.base.prefetch_slots(&hits);
            self.base.prefetch_nodes(&hits);
            self.select_among(&mut hits, event, found, memo, out);
        });
    }

    /// Readies `memo` for a new event.
    pub fn clear_memo(&self, memo: &mut Vec<u8>) {
        memo.clear();
        memo.resize(self.leaf_slots as usize, 0);
    }

    /// The first, cheapest pass over an event's candidates: drops those removed since the
    /// base was built and those whose first leaf fails, which is most of them.
    pub fn turn_down(&self, hits: &mut Hits, values: &EventValues<'_, '_>, memo: &mut [u8]) {
        let any_removed = self.removed_count > 0;
        hits.retain(|candidate| {
            !(any_removed && self.is_removed(candidate.action))
                && self.base.first_leaf_holds(*candidate, values, memo)
        });
    }

    /// Appends to `out`, in dispatch order, the actions that match `event` among the base's
    /// candidates `hits` left by [`TenantIndex::turn_down`] and the actions outside the base.
    pub fn select_among<'a>(
        &self,
        hits: &mut Hits,
        event: &EventRef<'a>,
        found: &Found<'a>,
        memo: &mut [u8],
        out: &mut Vec<Matched>,
    ) {
        let values = EventValues { event, found };
        hits.retain(|candidate| self.base.accepts(candidate.action, &values, memo));
        let mut outside: smallvec::SmallVec<[&CompiledAction; 4]> = smallvec::SmallVec::new();
        for action in self.outside.iter() {
            if action
                .patterns
                .iter()
                .any(|p| matches_pattern(p, event.event_type))
                && action.accepts(event, found, memo)
            {
                outside.push(action);
            }
        }
        // Base actions are numbered in dispatch order: sorting the numbers orders them, and an
        // action filed under two patterns that both matched comes out twice, side by side.
        if hits.len() > 1 {
            hits.sort_unstable();
            hits.dedup();
        }
        if outside.is_empty() {
            out.extend(hits.iter().map(|n| self.base.matched(n.action)));
            return;
        }
        // Both runs are in dispatch order: merge them.
        let (mut b, mut o) = (0, 0);
        while b < hits.len() || o < outside.len() {
            let take_base = o == outside.len()
                || (b < hits.len() && self.base.dispatch_cmp(hits[b].action, outside[o]).is_lt());
            if take_base {
                out.push(self.base.matched(hits[b].action));
                b += 1;
            } else {
                out.push(outside[o].matched());
                o += 1;
            }
        }
    }
}

impl HeapBytes for TenantIndex {
    fn heap_bytes(&self) -> usize {
        let arc = 16;
        let removed = if self.removed.is_empty() {
            0
        } else {
            arc + size_of_val(&*self.removed)
        };
        let outside = self
            .outside
            .iter()
            .map(|a| arc + size_of::<CompiledAction>() + a.heap_bytes())
            .sum::<usize>();
        arc + size_of::<Base>()
            + self.base.heap_bytes()
            + removed
            + arc
            + size_of_val(&*self.outside)
            + outside
            + arc
            + size_of::<PathTable>()
            + self.paths.heap_bytes()
    }
}
