//! Full loads: replacing every action at once (at start and on a resync).
//!
//! A load is split into parts, each owning a disjoint set of shards, so that parts compile and
//! build on separate cores without sharing anything. Actions are compiled as they are added and
//! their definitions can be dropped at once: a million-action load never holds a million
//! definitions and a million compiled actions at the same time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_common::condition::{Condition, Operator};
use herald_common::ids::{ActionId, TenantId};
use rustc_hash::{FxHashMap, FxHashSet};

use super::action::{CompiledAction, MatchSpec, PathTable};
use super::tenant::TenantIndex;
use super::{Engine, SHARDS, TenantMap, shard_of};

/// A tenant's actions as they are compiled, before its index is built.
#[derive(Default)]
struct TenantBuild {
    paths: PathTable,
    /// Identical leaves share a memo slot, so an event evaluates each once.
    leaves: FxHashMap<(Box<str>, Operator, serde_json::Value), u32>,
    actions: Vec<Arc<CompiledAction>>,
}

/// One part of a full load: takes the actions of the tenants whose shards it owns.
pub struct Loader<'e> {
    engine: &'e Engine,
    part: usize,
    parts: usize,
    tenants: FxHashMap<TenantId, TenantBuild>,
    /// One copy of each pattern list, and of each pattern, for every tenant of this part:
    /// event types repeat across tenants, and most actions name one.
    patterns: Patterns,
}

impl Engine {
    /// Splits a full load into `parts` loaders that can run on separate threads. Each replaces
    /// the contents of its own shards when finished; finish them all for a full replace.
    pub fn loaders(&self, parts: usize) -> Vec<Loader<'_>> {
        let parts = parts.clamp(1, SHARDS);
        (0..parts)
            .map(|part| Loader {
                engine: self,
                part,
                parts,
                tenants: FxHashMap::default(),
                patterns: Patterns::default(),
            })
            .collect()
    }

    /// Replaces everything with `actions`, compiling and building on every core (readers keep
    /// matching meanwhile: each shard switches to its new map in one step).
    pub fn load(&self, actions: &[(TenantId, ActionId, MatchSpec)]) {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|scope| {
            for mut loader in self.loaders(parts) {
                scope.spawn(move || {
                    for (tenant, id, spec) in actions {
                        if loader.owns(*tenant) {
                            loader.add(*tenant, *id, spec);
                        }
                    }
                    loader.finish();
                });
            }
        });
    }
}

/// Shared copies of pattern lists and of patterns.
#[derive(Default)]
struct Patterns {
    /// By the list's patterns joined with newlines (which no pattern holds).
    lists: FxHashMap<Box<str>, Arc<[Arc<str>]>>,
    one: FxHashSet<Arc<str>>,
}

impl Patterns {
    fn list(&mut self, types: &[String]) -> Arc<[Arc<str>]> {
        let joined;
        let key = match types {
            [one] => one.as_str(),
            _ => {
                joined = types.join("\n");
                joined.as_str()
            }
        };
        if let Some(list) = self.lists.get(key) {
            return list.clone();
        }
        let list: Arc<[Arc<str>]> = types.iter().map(|t| self.one(t)).collect();
        self.lists.insert(key.into(), list.clone());
        list
    }

    fn one(&mut self, pattern: &str) -> Arc<str> {
        if let Some(shared) = self.one.get(pattern) {
            return shared.clone();
        }
        let shared: Arc<str> = pattern.into();
        self.one.insert(shared.clone());
        shared
    }
}

impl Loader<'_> {
    /// Which part of the load `tenant`'s actions belong to.
    pub fn part_of(&self, tenant: TenantId) -> usize {
        shard_of(tenant) % self.parts
    }

    /// This loader's part.
    pub fn part(&self) -> usize {
        self.part
    }

    /// Whether `tenant`'s actions belong to this part.
    pub fn owns(&self, tenant: TenantId) -> bool {
        self.part_of(tenant) == self.part
    }

    /// Compiles one live action into this part. The tenant must be one this part owns.
    pub fn add(&mut self, tenant: TenantId, id: ActionId, spec: &MatchSpec) {
        debug_assert!(self.owns(tenant), "a loader got a tenant of another part");
        let build = self.tenants.entry(tenant).or_default();
        let leaves = &mut build.leaves;
        let mut slot = |leaf: &Condition| -> u32 {
            let Condition::Leaf { path, op, value } = leaf else {
                // Only leaves are given slots.
                return u32::MAX;
            };
            let next = leaves.len() as u32;
            *leaves
                .entry((path.as_str().into(), *op, value.clone()))
                .or_insert(next)
        };
        let patterns = &mut self.patterns;
        let compiled = CompiledAction::compile(
            id,
            spec,
            &mut build.paths,
            &mut slot,
            &mut self.engine.regex(),
            &mut |types| patterns.list(types),
        );
        build.actions.push(Arc::new(compiled));
    }

    /// Builds the indexes and swaps them into this part's shards, replacing what they held.
    pub fn finish(self) {
        let mut by_shard: Vec<TenantMap> = (0..SHARDS).map(|_| TenantMap::default()).collect();
        let mut actions: Vec<FxHashMap<ActionId, Arc<CompiledAction>>> =
            (0..SHARDS).map(|_| FxHashMap::default()).collect();
        for (tenant, build) in self.tenants {
            let shard = shard_of(tenant);
            for action in &build.actions {
                actions[shard].insert(action.id, action.clone());
            }
            let leaf_slots = build.leaves.len() as u32;
            let index = TenantIndex::build(build.actions, build.paths, leaf_slots);
            by_shard[shard].insert(tenant, Arc::new(index));
        }
        let engine = self.engine;
        for (shard, (map, actions)) in by_shard.into_iter().zip(actions).enumerate() {
            if shard % self.parts != self.part {
                continue;
            }
            let shard = &engine.shards[shard];
            let mut writer = shard.writer.lock().unwrap_or_else(|e| e.into_inner());
            engine
                .live
                .fetch_sub(writer.actions.len(), Ordering::Relaxed);
            engine.live.fetch_add(actions.len(), Ordering::Relaxed);
            writer.actions = actions;
            shard.tenants.store(Arc::new(map));
        }
    }
}
