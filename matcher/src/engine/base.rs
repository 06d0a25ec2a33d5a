//! A tenant's actions in compact form, built in one go (by a load, or when a tenant's recent
//! changes are folded in) and never changed afterwards.
//!
//! Actions are numbered in dispatch order, so a set of matches is put in order by sorting small
//! integers. Everything an event reads lives in a few arrays: the postings of its type (action
//! numbers), the actions' fixed fields, their condition nodes, the tenant's distinct condition
//! leaves. A million actions are a few allocations per tenant rather than several per action,
//! which is what keeps the index small and an event's cache misses few.

use std::cmp::Ordering;
use std::sync::Arc;

use herald_common::action::ActionMode;
use herald_common::condition::{Condition, Operator};

use herald_common::ids::ActionId;
use prefetch_index::prefetch_index;
use rustc_hash::FxHashMap;

use super::action::{CompiledAction, Matched, PathTable};
use super::condition::{Compiled, Field, Test, Values, compile_leaf, memoized};
use super::memory::{HeapBytes, slice_bytes, table_bytes};
use super::pattern::{PatternKind, first_segment, kind_of, matches_pattern};

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
    costly: u16,
    mode: ActionMode,
}

/// A run of the postings array.
type Range = (u32, u32);

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
    postings: Box<[u32]>,
    /// Exact patterns, by event type.
    exact: FxHashMap<Arc<str>, Range>,
    /// Wildcard patterns whose first segment is literal, by that segment.
    by_first: FxHashMap<Arc<str>, Groups>,
    /// Wildcard patterns starting with a wildcard.
    other: Groups,
    /// Actions matching every type.
    everything: Range,
    /// (id, action number), sorted by id: finds an action to change or remove.
    ids: Box<[(ActionId, u32)]>,
    pub costly: usize,
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
        let start = self.slots[action as usize].nodes as usize;
        let end = self
            .slots
            .get(action as usize + 1)
            .map_or(self.nodes.len(), |next| next.nodes as usize);
        (start, end)
    }

    /// Calls `visit` with every range of postings whose pattern matches `event_type`.
    pub fn ranges_for(&self, event_type: &str, mut visit: impl FnMut(&[u32])) {
        let postings = |(start, end): Range| &self.postings[start as usize..end as usize];
        if let Some(range) = self.exact.get(event_type) {
            visit(postings(*range));
        }
        if !self.by_first.is_empty()
            && let Some(groups) = self.by_first.get(first_segment(event_type))
        {
            for (pattern, range) in groups.iter() {
                if matches_pattern(pattern, event_type) {
                    visit(postings(*range));
                }
            }
        }
        for (pattern, range) in self.other.iter() {
            if matches_pattern(pattern, event_type) {
                visit(postings(*range));
            }
        }
        visit(postings(self.everything));
    }

    /// Asks for the memory that evaluating `actions` will read, level by level, so that the
    /// reads of all of them overlap instead of waiting for one another: their fixed fields,
    /// then their first condition node, then the leaf it names and that leaf's text.
    pub fn prefetch(&self, actions: &[u32]) {
        for action in actions {
            prefetch_index(&self.slots, *action as usize);
        }
        for action in actions {
            prefetch_index(&self.nodes, self.slots[*action as usize].nodes as usize);
        }
        let first_leaves: smallvec::SmallVec<[u32; 32]> =
            actions.iter().filter_map(|a| self.first_leaf(*a)).collect();
        for leaf in &first_leaves {
            prefetch_index(&self.leaves, *leaf as usize);
        }
        for leaf in &first_leaves {
            if let Some(text) = self.leaves[*leaf as usize].test.text() {
                prefetch_index(text.as_bytes(), 0);
            }
        }
    }

    /// The leaf an action's conditions start with, if they start with one.
    fn first_leaf(&self, action: u32) -> Option<u32> {
        let (start, end) = self.node_range(action);
        match self.nodes.get(start) {
            Some(Node::Leaf(leaf)) if start < end => Some(*leaf),
            _ => None,
        }
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
            + table_bytes(&self.exact)
            + table_bytes(&self.by_first)
            // Each tenant has its own copy of a first segment; the patterns are shared.
            + self.by_first.iter().map(|(first, g)| 16 + first.len() + groups(g)).sum::<usize>()
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
            for action in &base.postings[start as usize..end as usize] {
                patterns[*action as usize].push(pattern.clone());
            }
        };
        for (pattern, range) in &base.exact {
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
        let mut by_first: FxHashMap<Arc<str>, FxHashMap<Arc<str>, Vec<u32>>> = FxHashMap::default();
        let mut other: FxHashMap<Arc<str>, Vec<u32>> = FxHashMap::default();
        let mut everything = Vec::new();
        let mut costly = 0;
        for (number, at) in order.iter().enumerate() {
            let entry = &entries[*at as usize];
            let number = number as u32;
            slots.push(Slot {
                id: entry.id,
                priority: entry.priority,
                max_attempts: entry.max_attempts,
                name: laid_names.len() as u32,
                nodes: laid_nodes.len() as u32,
                costly: entry.costly,
                mode: entry.mode,
            });
            costly += usize::from(entry.costly);
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
                    PatternKind::FirstSegment(first) => by_first
                        .entry(first.into())
                        .or_default()
                        .entry(pattern.clone())
                        .or_default()
                        .push(number),
                    PatternKind::Other => other.entry(pattern.clone()).or_default().push(number),
                }
            }
        }
        ids.sort_unstable_by_key(|a| a.0);

        let mut postings: Vec<u32> = Vec::new();
        let mut range_of = |actions: Vec<u32>| -> Range {
            let start = postings.len() as u32;
            postings.extend(actions);
            (start, postings.len() as u32)
        };
        let mut groups = |map: FxHashMap<Arc<str>, Vec<u32>>| -> Groups {
            map.into_iter().map(|(p, v)| (p, range_of(v))).collect()
        };
        let other = groups(other);
        let by_first = by_first.into_iter().map(|(k, v)| (k, groups(v))).collect();
        let exact = exact.into_iter().map(|(k, v)| (k, range_of(v))).collect();
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
        }
    }
}
