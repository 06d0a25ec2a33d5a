//! The matching engine: every tenant's live actions, in memory, matched against events.
//!
//! Used by the matcher service, by ingest (sync actions and the dry-run API) and by the
//! benchmark. The engine itself is pure and in-process: it knows nothing of the broker or the
//! database; [`feed`] keeps one in step with the actions table.
//!
//! Readers never wait for writers. Tenants are spread over shards; each shard publishes an
//! immutable map of tenant indexes through an `ArcSwap`, so a match is a lock-free snapshot load
//! and a hash lookup. A writer (one per shard at a time) builds the tenant's next index beside
//! the current one and swaps the shard's map.

mod action;
pub mod barrier;
mod base;
pub mod batch;
mod condition;
mod event;
pub mod explain;
pub mod feed;
mod flat_map;
mod json;
mod loader;
mod memory;
mod pattern;
mod prefetch;
mod tenant;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use herald_common::ids::{ActionId, TenantId};
use herald_common::store::ActionRecord;
use rustc_hash::FxHashMap;

pub use action::{CompiledAction, MatchSpec, Matched, PathTable};
pub use event::{EventLineError, EventRef, MetadataRef, tenant_of_line};
use flat_map::FlatMap;
pub use json::Malformed;
pub use loader::Loader;
pub use pattern::{TypePattern, matches_pattern};
use tenant::TenantIndex;

/// Enough shards that a writer copies a small map, few enough to stay cheap when idle.
const SHARDS: usize = 64;

type TenantMap = FlatMap<TenantId, Arc<TenantIndex>>;

/// `map` with `tenant`'s index replaced by `index` (taken out when `None`). Maps are immutable
/// once published, so a change builds the next one.
fn with_tenant(map: &TenantMap, tenant: TenantId, index: Option<Arc<TenantIndex>>) -> TenantMap {
    let others = map.iter().filter(|(t, _)| **t != tenant);
    let entries = others
        .map(|(t, i)| (*t, i.clone()))
        .chain(index.map(|i| (tenant, i)));
    TenantMap::from_entries(entries)
}

struct Shard {
    tenants: ArcSwap<TenantMap>,
    /// Held by whoever builds the shard's next map: one writer at a time, readers never wait.
    writer: Mutex<()>,
}

/// Compiles a `matches` source. Sources were validated (size-limited) when the action was
/// saved; one that fails here matches nothing rather than taking the engine down.
fn compile_regex(source: &str) -> Arc<regex::Regex> {
    let regex = regex::RegexBuilder::new(source)
        .size_limit(herald_common::condition::MAX_REGEX_COMPILED_BYTES)
        .build()
        .unwrap_or_else(|_| regex::Regex::new(r"[^\s\S]").expect("a regex matching nothing"));
    Arc::new(regex)
}

/// Compiled regexes shared by every action that uses the same source.
#[derive(Default)]
struct RegexCache {
    compiled: FxHashMap<Box<str>, Arc<regex::Regex>>,
}

impl RegexCache {
    fn get(&mut self, source: &str) -> Arc<regex::Regex> {
        if let Some(regex) = self.compiled.get(source) {
            return regex.clone();
        }
        let regex = compile_regex(source);
        self.compiled.insert(source.into(), regex.clone());
        regex
    }
}

/// The in-memory matching engine.
pub struct Engine {
    shards: Box<[Shard]>,
    /// Live actions, kept by the writers so that reading it costs nothing.
    live: AtomicUsize,
    regexes: Mutex<RegexCache>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("actions", &self.len())
            .finish()
    }
}

fn shard_of(tenant: TenantId) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hash = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(tenant);
    (hash >> 32) as usize % SHARDS
}

impl Engine {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    tenants: ArcSwap::from_pointee(TenantMap::default()),
                    writer: Mutex::new(()),
                })
                .collect(),
            regexes: Mutex::new(RegexCache::default()),
            live: AtomicUsize::new(0),
        }
    }

    fn shard(&self, tenant: TenantId) -> &Shard {
        &self.shards[shard_of(tenant)]
    }

    fn regex(&self) -> impl FnMut(&str) -> Arc<regex::Regex> + '_ {
        move |source| {
            self.regexes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(source)
        }
    }

    /// Live actions in the engine.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wildcard patterns and regex conditions among a tenant's live actions.
    pub fn costly_parts(&self, tenant: TenantId) -> usize {
        self.shard(tenant)
            .tenants
            .load()
            .get(&tenant)
            .map_or(0, |t| t.costly)
    }

    /// Whether a tenant has live actions in sync mode: ingest looks for sync matches only then.
    pub fn has_sync_actions(&self, tenant: TenantId) -> bool {
        self.shard(tenant)
            .tenants
            .load()
            .get(&tenant)
            .is_some_and(|t| t.sync > 0)
    }

    /// Puts an action in, replacing its previous version; a disabled or deleted action is
    /// taken out instead.
    pub fn upsert<H>(&self, record: &ActionRecord<H>) {
        if !record.is_live() {
            self.remove(record.tenant_id, record.id);
            return;
        }
        self.put(
            record.tenant_id,
            record.id,
            &MatchSpec::from(&record.spec.matching),
        );
    }

    /// Puts a live action in, replacing its previous version.
    pub fn put(&self, tenant: TenantId, id: ActionId, spec: &MatchSpec) {
        let shard = self.shard(tenant);
        let _writer = shard.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tenants = shard.tenants.load();
        let current = tenants.get(&tenant).cloned();
        let mut paths = current
            .as_ref()
            .map(|t| (*t.paths).clone())
            .unwrap_or_default();
        let mut slots = current.as_ref().map_or(0, |t| t.leaf_slots);
        // New leaves get fresh slots (no sharing with existing ones, which only costs memo
        // space); a reload packs them again.
        let compiled = Arc::new(CompiledAction::compile(
            id,
            spec,
            &mut paths,
            &mut |_| {
                slots += 1;
                slots - 1
            },
            &mut self.regex(),
            &mut action::own_patterns,
        ));
        let current = current.unwrap_or_else(|| Arc::new(TenantIndex::new()));
        let (next, replaced) = current.with_put(compiled, Arc::new(paths), slots);
        if !replaced {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        let map = with_tenant(&tenants, tenant, Some(Arc::new(next)));
        shard.tenants.store(Arc::new(map));
    }

    /// Takes an action out (nothing happens if it is not in).
    pub fn remove(&self, tenant: TenantId, id: ActionId) {
        let shard = self.shard(tenant);
        let _writer = shard.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tenants = shard.tenants.load();
        let Some(next) = tenants.get(&tenant).and_then(|current| current.without(id)) else {
            return;
        };
        self.live.fetch_sub(1, Ordering::Relaxed);
        let next = (next.len > 0).then(|| Arc::new(next));
        shard
            .tenants
            .store(Arc::new(with_tenant(&tenants, tenant, next)));
    }

    /// Bytes the index's structures hold (see `memory`): every tenant's index and the shards'
    /// maps of them.
    pub fn index_bytes(&self) -> usize {
        use memory::HeapBytes;
        self.shards
            .iter()
            .map(|shard| {
                let map = shard.tenants.load();
                map.heap_bytes()
                    + map
                        .values()
                        .map(|t| size_of::<TenantIndex>() + 16 + t.heap_bytes())
                        .sum::<usize>()
            })
            .sum()
    }

    /// The name of action `id` of `tenant`, if it is live (for tests and diagnostics: matches
    /// carry ids, not names).
    pub fn action_name(&self, tenant: TenantId, id: ActionId) -> Option<String> {
        self.index_of(tenant)?.name_of(id)
    }

    fn index_of(&self, tenant: TenantId) -> Option<Arc<TenantIndex>> {
        self.shard(tenant).tenants.load().get(&tenant).cloned()
    }

    /// Matches an event as published to `herald.events` (JSON with `tenant_id`), reading it
    /// in one pass when `tenant_id` comes before `data`: values under the tenant's condition
    /// paths are picked up on the way and everything else is skipped. Appends the matches to
    /// `out` in dispatch order.
    pub fn match_json(&self, line: &str, out: &mut Vec<Matched>) -> Result<(), EventLineError> {
        let mut found = json::Found::default();
        let (event, index) =
            event::read_line(line, None, |tenant| self.index_of(tenant), &mut found)?;
        if let Some(index) = index {
            index.select(&event, &found, out);
        }
        Ok(())
    }

    /// Appends to `out` the actions that match `event`, in dispatch order.
    pub fn matches(&self, event: &EventRef<'_>, out: &mut Vec<Matched>) -> Result<(), Malformed> {
        let tenants = self.shard(event.tenant_id).tenants.load();
        match tenants.get(&event.tenant_id) {
            Some(index) => index.matches(event, out),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
