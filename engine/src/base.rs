//! A tenant's actions in compact form, built in one go (by a load, or when a tenant's recent
//! changes are folded in) and never changed afterwards.
//!
//! Actions are numbered in dispatch order, so a set of matches is put in order by sorting small
//! integers. Everything an event reads lives in a few arrays: the postings of its type (action
//! numbers, each with the leaf its conditions start with), the actions' fixed fields, their
//! condition nodes, the tenant's distinct condition leaves (short texts inline). A million
//! actions are a few allocations per tenant rather than several per action, which is what
//! keeps the index small and an event's cache misses few: most candidates are turned down by
//! their first leaf, read straight from the posting.

use std::cmp::Ordering;
use std::sync::Arc;

use herald_common::action::ActionMode;
use herald_common::condition::{Condition, Operator};

use herald_common::ids::ActionId;
use prefetch_index::prefetch_index;
use rustc_hash::FxHashMap;

use super::action::{CompiledAction, Matched, PathTable};
use super::condition::{Compiled, Field, Test, Values, compile_leaf, memoized};
use super::flat_map::FlatMap;
use super::memory::{HeapBytes, slice_bytes};
use super::pattern::{PatternKind, first_segment, kind_of, matches_pattern};
use super::prefetch;

/// A distinct condition leaf of a tenant. Identical leaves are one entry, so an event
/// evaluates each at most once (its result is remembered by leaf number).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub field: Field,
    pub test: Test,
}

/// A condition node. An action's conditions are a run of nodes in preorder, all of which must
/// hold; a group is followed by the `span` nodes of its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Leaf(u32),
    All { span: u32 },
    Any { span: u32 },
    Not { span: u32 },
}

fn all(span: u32) -> Node {
    Node::All { span }
}

fn any(span: u32) -> Node {
    Node::Any { span }
}

fn not(span: u32) -> Node {
    Node::Not { span }
}

/// An action's fixed fields. Its name and nodes run from its own offsets to the next action's.
#[derive(Debug, Clone)]
struct Slot {
    id: ActionId,
    priority: i32,
    max_attempts: u32,
    name: u32,
    nodes: u32,
    /// Where its nodes end: kept here, so that finding them reads no other slot.
    nodes_end: u32,
    costly: u16,
    mode: ActionMode,
}

/// A pattern whose first segment is literal, as a key that stands for that segment: the
/// pattern's string is shared by every tenant, where a copy of the segment would be one more
/// allocation per tenant, and one more cache miss per event.
#[derive(Debug, Clone)]
struct BySegment(Arc<str>);

impl BySegment {
    fn segment(&self) -> &str {
        first_segment(&self.0)
    }
}

impl PartialEq for BySegment {
    fn eq(&self, other: &Self) -> bool {
        self.segment() == other.segment()
    }
}

impl Eq for BySegment {}

impl std::hash::Hash for BySegment {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.segment().hash(state);
    }
}

impl std::borrow::Borrow<str> for BySegment {
    fn borrow(&self) -> &str {
        self.segment()
    }
}

/// A run of the postings array.
pub type Range = (u32, u32);

/// An action filed under a pattern, with the leaf its conditions start with. Most candidates
/// for an event are turned down by that leaf alone, which is then read without the action's
/// slot or nodes: one cache line per candidate instead of three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Posting {
    pub action: u32,
    /// [`NO_LEAF`] when the conditions do not start with a leaf.
    first_leaf: u32,
}

const NO_LEAF: u32 = u32::MAX;

impl Posting {
    fn first_leaf(self) -> Option<u32> {
        (self.first_leaf != NO_LEAF).then_some(self.first_leaf)
    }
}

/// The levels of memory turning candidates down reads, each found from the one before.
#[derive(Debug, Clone, Copy)]
pub enum PrefetchLevel {
    Leaves,
    Texts,
}

impl PrefetchLevel {
    pub const ALL: [Self; 2] = [Self::Leaves, Self::Texts];
}

/// The leaf the conditions of an action start with, if they start with one, given where its
/// nodes run.
fn first_leaf_in(nodes: &[Node], (start, end): (usize, usize)) -> Option<u32> {
    match nodes.get(start) {
        Some(Node::Leaf(leaf)) if start < end => Some(*leaf),
        _ => None,
    }
}

/// Wildcard patterns sharing a filing place, each with the run of actions that use it.
type Groups = Box<[(Arc<str>, Range)]>;

/// The pattern that stands for "every type" when actions are filed again.
const EVERYTHING: &str = "#";

#[derive(Debug, Default)]
pub struct Base {
    slots: Box<[Slot]>,
    names: Box<str>,
    nodes: Box<[Node]>,
    pub leaves: Box<[Leaf]>,
    /// Action numbers, ascending within each range.
    postings: Box<[Posting]>,
    /// Exact patterns, by event type.
    exact: FlatMap<Arc<str>, Range>,
    /// Wildcard patterns whose first segment is literal, by that segment.
    by_first: FlatMap<BySegment, Groups>,
    /// Wildcard patterns starting with a wildcard.
    other: Groups,
    /// Actions matching every type.
    everything: Range,
    /// (id, action number), sorted by id: finds an action to change or remove.
    ids: Box<[(ActionId, u32)]>,
    pub costly: usize,
    /// Actions in sync mode (ingest waits for their results only when a tenant has some).
    pub sync: usize,
}

impl Base {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The number of action `id`, if it is here.
    pub fn find(&self, id: ActionId) -> Option<u32> {
        self.ids
            .binary_search_by(|(other, _)| other.cmp(&id))
            .ok()
            .map(|at| self.ids[at].1)
    }

    pub fn name(&self, action: u32) -> &str {
        let start = self.slots[action as usize].name as usize;
        let end = self
            .slots
            .get(action as usize + 1)
            .map_or(self.names.len(), |next| next.name as usize);
        &self.names[start..end]
    }

    pub fn costly(&self, action: u32) -> usize {
        usize::from(self.slots[action as usize].costly)
    }

    pub fn is_sync(&self, action: u32) -> bool {
        self.slots[action as usize].mode == ActionMode::Sync
    }

    pub fn matched(&self, action: u32) -> Matched {
        let slot = &self.slots[action as usize];
        Matched {
            id: slot.id,
            priority: slot.priority,
            mode: slot.mode,
            max_attempts: slot.max_attempts,
        }
    }

    /// Dispatch order between one of these actions and an action kept outside the base.
    pub fn dispatch_cmp(&self, action: u32, other: &CompiledAction) -> Ordering {
        let slot = &self.slots[action as usize];
        slot.priority
            .cmp(&other.priority)
            .then_with(|| self.name(action).cmp(&other.name))
            .then_with(|| slot.id.cmp(&other.id))
    }

    fn node_range(&self, action: u32) -> (usize, usize) {
        let slot = &self.slots[action as usize];
        (slot.nodes as usize, slot.nodes_end as usize)
    }

    /// Calls `visit` with every range of postings whose pattern matches `event_type`.
    pub fn ranges_for(&self, event_type: &str, mut visit: impl FnMut(&[Posting])) {
        self.type_ranges(event_type, |range| visit(self.postings(range)));
    }

    /// Calls `visit` with the bounds of every range of postings whose pattern matches
    /// `event_type`.
    pub fn type_ranges(&self, event_type: &str, mut visit: impl FnMut(Range)) {
        if let Some(range) = self.exact.get(event_type) {
            visit(*range);
        }
        if !self.by_first.is_empty()
            && let Some(groups) = self.by_first.get(first_segment(event_type))
        {
            for (pattern, range) in groups.iter() {
                if matches_pattern(pattern, event_type) {
                    visit(*range);
                }
            }
        }
        for (pattern, range) in self.other.iter() {
            if matches_pattern(pattern, event_type) {
                visit(*range);
            }
        }
        visit(self.everything);
    }

    /// Asks for the fields matching reads, which span several cache lines.
    pub fn prefetch_fields(&self) {
        prefetch::at(&self.slots);
        prefetch::at(&self.nodes);
        prefetch::at(&self.leaves);
        prefetch::at(&self.postings);
        prefetch::at(&self.exact);
        prefetch::at(&self.by_first);
        prefetch::at(&self.other);
        prefetch::at(&self.everything);
    }

    /// Asks for the lists of wildcard patterns [`Base::type_ranges`] will read for
    /// `event_type` (reading the type table, asked for by [`Base::prefetch_type`]).
    pub fn prefetch_groups(&self, event_type: &str) {
        if !self.by_first.is_empty()
            && let Some(groups) = self.by_first.get(first_segment(event_type))
        {
            prefetch::slice(groups);
        }
        prefetch::slice(&self.other);
    }

    pub fn postings(&self, (start, end): Range) -> &[Posting] {
        &self.postings[start as usize..end as usize]
    }

    /// Asks for the memory that finding the postings of `event_type` starts with.
    pub fn prefetch_type(&self, event_type: &str) {
        self.exact.prefetch(event_type);
        if !self.by_first.is_empty() {
            self.by_first.prefetch(first_segment(event_type));
        }
    }

    /// Asks for the memory that turning `candidates` down will read, level by level, so that
    /// the reads of all of them overlap instead of waiting for one another: the leaf each
    /// starts with, then that leaf's text.
    pub fn prefetch(&self, candidates: &[Posting]) {
        for level in PrefetchLevel::ALL {
            self.prefetch_level(level, candidates);
        }
    }

    /// One level of [`Base::prefetch`]; each level reads what the one before asked for.
    pub fn prefetch_level(&self, level: PrefetchLevel, candidates: &[Posting]) {
        let first_leaves = candidates.iter().filter_map(|p| p.first_leaf());
        match level {
            PrefetchLevel::Leaves => {
                for leaf in first_leaves {
                    prefetch::item(&self.leaves, leaf as usize);
                }
            }
            PrefetchLevel::Texts => {
                for leaf in first_leaves {
                    self.leaves[leaf as usize].test.prefetch_outside();
                }
            }
        }
    }

    /// Asks for the fixed fields of `candidates`: where their nodes are, and what a match
    /// reports.
    pub fn prefetch_slots(&self, candidates: &[Posting]) {
        for posting in candidates {
            prefetch::item(&self.slots, posting.action as usize);
        }
    }

    /// Asks for the condition nodes of `candidates` (whose slots it reads).
    pub fn prefetch_nodes(&self, candidates: &[Posting]) {
        for posting in candidates {
            prefetch_index(
                &self.nodes,
                self.slots[posting.action as usize].nodes as usize,
            );
        }
    }

    /// Whether the leaf `candidate` starts with holds (true when it starts with none): the
    /// first, cheapest test of [`Base::accepts`].
    pub fn first_leaf_holds(
        &self,
        candidate: Posting,
        values: &impl Values,
        memo: &mut [u8],
    ) -> bool {
        candidate
            .first_leaf()
            .is_none_or(|leaf| self.leaf_holds(leaf, values, memo))
    }

    /// Whether every condition of `action` holds. `memo` is indexed by leaf: 0 not yet
    /// evaluated for this event, 1 false, 2 true.
    pub fn accepts(&self, action: u32, values: &impl Values, memo: &mut [u8]) -> bool {
        let (mut at, end) = self.node_range(action);
        while at < end {
            let (held, next) = self.holds_at(at, values, memo);
            if !held {
                return false;
            }
            at = next;
        }
        true
    }

    /// Whether the node at `at` holds, and where the node after it starts.
    fn holds_at(&self, at: usize, values: &impl Values, memo: &mut [u8]) -> (bool, usize) {
        match self.nodes[at] {
            Node::Leaf(leaf) => (self.leaf_holds(leaf, values, memo), at + 1),
            Node::All { span } => {
                let end = at + 1 + span as usize;
                let mut member = at + 1;
                while member < end {
                    let (held, next) = self.holds_at(member, values, memo);
                    if !held {
                        return (false, end);
                    }
                    member = next;
                }
                (true, end)
            }
            Node::Any { span } => {
                let end = at + 1 + span as usize;
                let mut member = at + 1;
                while member < end {
                    let (held, next) = self.holds_at(member, values, memo);
                    if held {
                        return (true, end);
                    }
                    member = next;
                }
                (false, end)
            }
            Node::Not { span } => {
                let end = at + 1 + span as usize;
                (!self.holds_at(at + 1, values, memo).0, end)
            }
        }
    }

    fn leaf_holds(&self, leaf: u32, values: &impl Values, memo: &mut [u8]) -> bool {
        let Leaf { field, test } = &self.leaves[leaf as usize];
        memoized(memo, leaf, || {
            test.holds_with(|visit| values.any(*field, visit))
        })
    }
}

impl HeapBytes for Base {
    fn heap_bytes(&self) -> usize {
        let groups = |groups: &Groups| size_of_val(&**groups);
        size_of_val(&*self.slots)
            + self.names.len()
            + size_of_val(&*self.nodes)
            + slice_bytes(&self.leaves)
            + size_of_val(&*self.postings)
            + self.exact.heap_bytes()
            + self.by_first.heap_bytes()
            + self.by_first.values().map(groups).sum::<usize>()
            + groups(&self.other)
            + size_of_val(&*self.ids)
    }
}

impl HeapBytes for Leaf {
    fn heap_bytes(&self) -> usize {
        self.test.heap_bytes()
    }
}

/// One action on its way into a base.
struct Entry {
    id: ActionId,
    priority: i32,
    max_attempts: u32,
    costly: u16,
    mode: ActionMode,
    name: (u32, u32),
    nodes: (u32, u32),
    patterns: Arc<[Arc<str>]>,
}

/// The key that makes two leaves the same leaf.
type LeafKey = (Box<str>, Operator, serde_json::Value);

/// Gathers actions, then lays them out as a [`Base`].
#[derive(Default)]
pub struct BaseBuilder {
    entries: Vec<Entry>,
    names: String,
    nodes: Vec<Node>,
    leaves: Vec<Leaf>,
    /// Leaves added from definitions, for sharing identical ones.
    leaf_keys: FxHashMap<LeafKey, u32>,
}

impl BaseBuilder {
    /// Adds an action from its definition. Paths are registered in `paths`, regexes compiled
    /// (and shared) by `regex`; `patterns` is the action's pattern list.
    pub fn add_spec(
        &mut self,
        id: ActionId,
        spec: &super::MatchSpec,
        patterns: Arc<[Arc<str>]>,
        paths: &mut PathTable,
        regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
    ) {
        let start = self.nodes.len() as u32;
        // The source filter is the same test as a condition `source equals ...`.
        if let Some(source) = &spec.source {
            let value = serde_json::Value::from(source.as_str());
            let leaf = self.leaf("source", Operator::Equals, &value, paths, regex);
            self.nodes.push(Node::Leaf(leaf));
        }
        for condition in &spec.conditions {
            self.push_condition(condition, paths, regex);
        }
        let nodes = (start, self.nodes.len() as u32);
        let name = self.push_name(&spec.name);
        self.entries.push(Entry {
            id,
            priority: spec.priority,
            max_attempts: spec.max_attempts,
            costly: spec.costly.min(usize::from(u16::MAX)) as u16,
            mode: spec.mode,
            name,
            nodes,
            patterns,
        });
    }

    fn push_name(&mut self, name: &str) -> (u32, u32) {
        let start = self.names.len() as u32;
        self.names.push_str(name);
        (start, self.names.len() as u32)
    }

    fn leaf(
        &mut self,
        path: &str,
        op: Operator,
        value: &serde_json::Value,
        paths: &mut PathTable,
        regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
    ) -> u32 {
        let key: LeafKey = (path.into(), op, value.clone());
        if let Some(leaf) = self.leaf_keys.get(&key) {
            return *leaf;
        }
        let (field, test) = compile_leaf(path, op, value, &mut |p| paths.id(p), regex);
        let number = self.leaves.len() as u32;
        self.leaves.push(Leaf { field, test });
        self.leaf_keys.insert(key, number);
        number
    }

    /// Pushes a group node, then its members, then records how many nodes they took.
    fn push_group(&mut self, group: fn(u32) -> Node, members: impl FnOnce(&mut Self)) {
        let at = self.nodes.len();
        self.nodes.push(group(0));
        members(self);
        self.nodes[at] = group((self.nodes.len() - at - 1) as u32);
    }

    fn push_condition(
        &mut self,
        condition: &Condition,
        paths: &mut PathTable,
        regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
    ) {
        match condition {
            Condition::Leaf { path, op, value } => {
                let leaf = self.leaf(path, *op, value, paths, regex);
                self.nodes.push(Node::Leaf(leaf));
            }
            Condition::All(members) => self.push_group(all, |b| {
                members
                    .iter()
                    .for_each(|m| b.push_condition(m, paths, regex))
            }),
            Condition::Any(members) => self.push_group(any, |b| {
                members
                    .iter()
                    .for_each(|m| b.push_condition(m, paths, regex))
            }),
            Condition::Not(inner) => {
                self.push_group(not, |b| b.push_condition(inner, paths, regex))
            }
        }
    }

    /// Adds an action kept outside a base until now; its leaves become leaves of this one.
    pub fn add_compiled(&mut self, action: &CompiledAction) {
        let start = self.nodes.len() as u32;
        for condition in action.conditions.iter() {
            self.push_compiled(condition);
        }
        let nodes = (start, self.nodes.len() as u32);
        let name = self.push_name(&action.name);
        self.entries.push(Entry {
            id: action.id,
            priority: action.priority,
            max_attempts: action.max_attempts,
            costly: action.costly_parts().min(usize::from(u16::MAX)) as u16,
            mode: action.mode,
            name,
            nodes,
            patterns: action.patterns.clone(),
        });
    }

    fn push_compiled(&mut self, condition: &Compiled) {
        match condition {
            Compiled::Leaf { field, test, .. } => {
                let leaf = self.leaves.len() as u32;
                self.leaves.push(Leaf {
                    field: *field,
                    test: test.clone(),
                });
                self.nodes.push(Node::Leaf(leaf));
            }
            Compiled::All(members) => {
                self.push_group(all, |b| members.iter().for_each(|m| b.push_compiled(m)))
            }
            Compiled::Any(members) => {
                self.push_group(any, |b| members.iter().for_each(|m| b.push_compiled(m)))
            }
            Compiled::Not(inner) => self.push_group(not, |b| b.push_compiled(inner)),
        }
    }

    /// Starts from `base`'s actions, less those `removed` says are gone. Only the leaves the
    /// kept actions use are carried over.
    pub fn from_base(base: &Base, removed: impl Fn(u32) -> bool) -> Self {
        let mut patterns: Vec<Vec<Arc<str>>> = vec![Vec::new(); base.len()];
        let mut file = |pattern: &Arc<str>, (start, end): Range| {
            for posting in &base.postings[start as usize..end as usize] {
                patterns[posting.action as usize].push(pattern.clone());
            }
        };
        for (pattern, range) in base.exact.iter() {
            file(pattern, *range);
        }
        for groups in base.by_first.values() {
            for (pattern, range) in groups.iter() {
                file(pattern, *range);
            }
        }
        for (pattern, range) in base.other.iter() {
            file(pattern, *range);
        }
        let everything: Arc<str> = EVERYTHING.into();
        file(&everything, base.everything);

        let mut builder = Self::default();
        let mut leaf_map = vec![u32::MAX; base.leaves.len()];
        for (action, patterns) in patterns.into_iter().enumerate() {
            let number = action as u32;
            if removed(number) {
                continue;
            }
            let slot = &base.slots[action];
            let start = builder.nodes.len() as u32;
            let (from, to) = base.node_range(number);
            for node in &base.nodes[from..to] {
                let node = match *node {
                    Node::Leaf(leaf) => {
                        let mapped = &mut leaf_map[leaf as usize];
                        if *mapped == u32::MAX {
                            *mapped = builder.leaves.len() as u32;
                            builder.leaves.push(base.leaves[leaf as usize].clone());
                        }
                        Node::Leaf(*mapped)
                    }
                    group => group,
                };
                builder.nodes.push(node);
            }
            let nodes = (start, builder.nodes.len() as u32);
            let name = builder.push_name(base.name(number));
            builder.entries.push(Entry {
                id: slot.id,
                priority: slot.priority,
                max_attempts: slot.max_attempts,
                costly: slot.costly,
                mode: slot.mode,
                name,
                nodes,
                patterns: patterns.into(),
            });
        }
        builder
    }

    /// Lays the actions out in dispatch order and files them by pattern.
    pub fn finish(self) -> Base {
        let Self {
            entries,
            names,
            nodes,
            leaves,
            ..
        } = self;
        let name_of = |e: &Entry| &names[e.name.0 as usize..e.name.1 as usize];
        let mut order: Vec<u32> = (0..entries.len() as u32).collect();
        order.sort_unstable_by(|a, b| {
            let (a, b) = (&entries[*a as usize], &entries[*b as usize]);
            a.priority
                .cmp(&b.priority)
                .then_with(|| name_of(a).cmp(name_of(b)))
                .then_with(|| a.id.cmp(&b.id))
        });

        let mut slots = Vec::with_capacity(entries.len());
        let mut laid_names = String::with_capacity(names.len());
        let mut laid_nodes = Vec::with_capacity(nodes.len());
        let mut ids = Vec::with_capacity(entries.len());
        let mut exact: FxHashMap<Arc<str>, Vec<u32>> = FxHashMap::default();
        let mut by_first: FxHashMap<BySegment, FxHashMap<Arc<str>, Vec<u32>>> =
            FxHashMap::default();
        let mut other: FxHashMap<Arc<str>, Vec<u32>> = FxHashMap::default();
        let mut everything = Vec::new();
        let mut costly = 0;
        let mut sync = 0;
        for (number, at) in order.iter().enumerate() {
            let entry = &entries[*at as usize];
            let number = number as u32;
            slots.push(Slot {
                id: entry.id,
                priority: entry.priority,
                max_attempts: entry.max_attempts,
                name: laid_names.len() as u32,
                nodes: laid_nodes.len() as u32,
                nodes_end: (laid_nodes.len() + (entry.nodes.1 - entry.nodes.0) as usize) as u32,
                costly: entry.costly,
                mode: entry.mode,
            });
            costly += usize::from(entry.costly);
            sync += usize::from(entry.mode == ActionMode::Sync);
            laid_names.push_str(name_of(entry));
            laid_nodes.extend_from_slice(&nodes[entry.nodes.0 as usize..entry.nodes.1 as usize]);
            ids.push((entry.id, number));
            for (i, pattern) in entry.patterns.iter().enumerate() {
                if entry.patterns[..i].contains(pattern) {
                    continue;
                }
                match kind_of(pattern) {
                    PatternKind::Exact(_) => exact.entry(pattern.clone()).or_default().push(number),
                    PatternKind::Everything => everything.push(number),
                    PatternKind::FirstSegment(_) => by_first
                        .entry(BySegment(pattern.clone()))
                        .or_default()
                        .entry(pattern.clone())
                        .or_default()
                        .push(number),
                    PatternKind::Other => other.entry(pattern.clone()).or_default().push(number),
                }
            }
        }
        ids.sort_unstable_by_key(|a| a.0);

        let node_range = |action: u32| {
            let slot: &Slot = &slots[action as usize];
            (slot.nodes as usize, slot.nodes_end as usize)
        };
        let mut postings: Vec<Posting> = Vec::new();
        let mut range_of = |actions: Vec<u32>| -> Range {
            let start = postings.len() as u32;
            postings.extend(actions.into_iter().map(|action| Posting {
                action,
                first_leaf: first_leaf_in(&laid_nodes, node_range(action)).unwrap_or(NO_LEAF),
            }));
            (start, postings.len() as u32)
        };
        let mut groups = |map: FxHashMap<Arc<str>, Vec<u32>>| -> Groups {
            map.into_iter().map(|(p, v)| (p, range_of(v))).collect()
        };
        let other = groups(other);
        let by_first = FlatMap::from_entries(by_first.into_iter().map(|(k, v)| (k, groups(v))));
        let exact = FlatMap::from_entries(exact.into_iter().map(|(k, v)| (k, range_of(v))));
        let everything = range_of(everything);
        Base {
            slots: slots.into(),
            names: laid_names.into(),
            nodes: laid_nodes.into(),
            leaves: leaves.into(),
            postings: postings.into(),
            exact,
            by_first,
            other,
            everything,
            ids: ids.into(),
            costly,
            sync,
        }
    }
}
