//! Full loads: replacing every action at once (at start and on a resync).
//!
//! A load is split into parts, each owning a disjoint set of shards, so that parts compile and
//! build on separate cores without sharing anything. Actions are compiled as they are added and
//! their definitions can be dropped at once: a million-action load never holds a million
//! definitions and a million compiled actions at the same time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use herald_common::ids::{ActionId, TenantId};
use rustc_hash::{FxHashMap, FxHashSet};

use super::action::{MatchSpec, PathTable};
use super::base::BaseBuilder;
use super::tenant::TenantIndex;
use super::{Engine, SHARDS, TenantMap, shard_of};

/// A tenant's actions as they are compiled, before its index is built.
#[derive(Default)]
struct TenantBuild {
    paths: PathTable,
    base: BaseBuilder,
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
        let patterns = self.patterns.list(&spec.event_types);
        build.base.add_spec(
            id,
            spec,
            patterns,
            &mut build.paths,
            &mut self.engine.regex(),
        );
    }

    /// Builds the indexes and swaps them into this part's shards, replacing what they held.
    pub fn finish(self) {
        let mut by_shard: Vec<Vec<(TenantId, Arc<TenantIndex>)>> =
            (0..SHARDS).map(|_| Vec::new()).collect();
        for (tenant, build) in self.tenants {
            let index = TenantIndex::from_base(build.base.finish(), build.paths);
            by_shard[shard_of(tenant)].push((tenant, Arc::new(index)));
        }
        let engine = self.engine;
        for (shard, map) in by_shard.into_iter().enumerate() {
            if shard % self.parts != self.part {
                continue;
            }
            let shard = &engine.shards[shard];
            let _writer = shard.writer.lock().unwrap_or_else(|e| e.into_inner());
            let count = |map: &TenantMap| map.values().map(|t| t.len).sum::<usize>();
            engine
                .live
                .fetch_sub(count(&shard.tenants.load()), Ordering::Relaxed);
            engine
                .live
                .fetch_add(map.iter().map(|(_, t)| t.len).sum(), Ordering::Relaxed);
            shard.tenants.store(Arc::new(TenantMap::from_entries(map)));
        }
    }
}
