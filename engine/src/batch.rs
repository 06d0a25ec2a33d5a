//! Matching many events at once, for callers that hold many event lines (the benchmark, bulk
//! dry runs), with the memory reads of each event started well before they are needed. (The
//! matcher service matches decoded events one at a time: its cost is the broker and the
//! database, not the engine.)
//!
//! Matching one event is a chain of dependent reads: the tenant's entry, its index, the
//! index's parts, the path tries, the type table, the postings, the candidates' first leaves
//! and their texts, the slots and nodes of those left. When the index is larger than the caches
//! (a million actions), each link is a cache miss of about 200 ns on this kind of machine, and
//! one event waits for a dozen of them in turn, while the memory system could serve twenty at
//! once.
//!
//! So events go through a software pipeline: each stage does one link of the chain and asks
//! for (prefetches) the memory of the next, and at each step every stage works on a different
//! event, the first stage on the newest. Between a prefetch and its read, a whole step passes,
//! including the reading of one event (about a microsecond): the memory has arrived. Results
//! come out in the order of the lines.
//!
//! The first stage works from a guess read straight from the line (the text after
//! `{"tenant_id":"`, as publishers write it). A guess only decides what is prefetched: the
//! event is still parsed in full, and an event whose tenant was guessed wrong (or not at all)
//! is matched on its own, so results never depend on a guess.

use std::cell::OnceCell;
use std::sync::{Arc, LazyLock};

use herald_common::ids::TenantId;
use memchr::memmem::Finder;
use smallvec::SmallVec;

use super::action::EventValues;
use super::base::{PrefetchLevel, Range};
use super::event::{EventLineError, EventRef, KnownTenant, read_line};
use super::json::Found;
use super::prefetch;
use super::tenant::{Hits, TenantIndex};
use super::{Engine, Matched, SHARDS, TenantMap, shard_of};

/// The stages, in order (see [`Pipeline::advance`]).
const STAGES: usize = 12;
/// Events in flight: at least one per stage, a power of two.
const RING: usize = 16;

/// The size from which the pipeline pays for itself. Measured with `cargo xtask bench matcher`
/// on a 2-core VM (32 MB L3): at 10k actions (an index of 2 MB, mostly in cache) one line at a time is
/// 15% faster; at 100k (19 MB) the pipeline is 8% faster, and at a million 30%.
const PIPELINE_FROM_ACTIONS: usize = 32_000;

/// Where a guessed tenant id is looked for: the first bytes of a line.
const GUESS_WITHIN: usize = 256;

static TENANT_KEY: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(b"\"tenant_id\":\"").into_owned());

/// The tenant a line names, found without parsing it: the text after the first
/// `"tenant_id":"` near its start. Only a guess (a value inside the event could hold that text).
fn guess_tenant(line: &str) -> Option<KnownTenant<'_>> {
    let key = TENANT_KEY.needle();
    let head = &line.as_bytes()[..line.len().min(GUESS_WITHIN)];
    let at = if head.len() > key.len() && head[0] == b'{' && head[1..].starts_with(key) {
        1 + key.len()
    } else {
        TENANT_KEY.find(head)? + key.len()
    };
    let rest = &line[at..];
    let text = &rest[..memchr::memchr(b'"', rest.as_bytes())?];
    Some(KnownTenant {
        text,
        id: text.parse().ok()?,
    })
}

/// The shards' maps, each loaded when first needed and kept for the whole batch.
struct Snapshot<'e> {
    engine: &'e Engine,
    maps: [OnceCell<Arc<TenantMap>>; SHARDS],
}

impl<'e> Snapshot<'e> {
    fn new(engine: &'e Engine) -> Self {
        Self {
            engine,
            maps: std::array::from_fn(|_| OnceCell::new()),
        }
    }

    fn map(&self, tenant: TenantId) -> &TenantMap {
        let shard = shard_of(tenant);
        self.maps[shard].get_or_init(|| self.engine.shards[shard].tenants.load_full())
    }
}

/// One event in the pipeline, as far as it has gone.
#[derive(Default)]
struct Pending<'l, 's> {
    line: &'l str,
    guessed_tenant: Option<KnownTenant<'l>>,
    /// The guessed tenant's index.
    index: Option<&'s TenantIndex>,
    /// The event, once read with `index`; `None` when it must be matched on its own.
    event: Option<Result<EventRef<'l>, EventLineError>>,
    found: Found<'l>,
    ranges: SmallVec<[Range; 4]>,
    hits: Hits,
    memo: Vec<u8>,
}

impl<'l, 's> Pending<'l, 's> {
    fn start(&mut self, line: &'l str) {
        self.line = line;
        self.guessed_tenant = guess_tenant(line);
        self.index = None;
        self.event = None;
        self.found.clear();
        self.ranges.clear();
        self.hits.clear();
    }

    /// The index and the event, when the event was read with its tenant's index.
    fn ready(&self) -> Option<(&'s TenantIndex, &EventRef<'l>)> {
        match (self.index, &self.event) {
            (Some(index), Some(Ok(event))) => Some((index, event)),
            _ => None,
        }
    }
}

struct Pipeline<'l, 's> {
    snapshot: &'s Snapshot<'s>,
    ring: [Pending<'l, 's>; RING],
    out: Vec<Matched>,
}

impl<'l, 's> Pipeline<'l, 's> {
    /// Does `stage` for the event in `slot`. Each stage reads what the one before asked for
    /// and asks for what the next one reads.
    fn advance(
        &mut self,
        stage: usize,
        slot: usize,
        line: &'l str,
        each: &mut impl FnMut(Result<&[Matched], EventLineError>),
    ) {
        let snapshot = self.snapshot;
        let pending = &mut self.ring[slot];
        match stage {
            // The tenant's entry.
            0 => {
                pending.start(line);
                if let Some(tenant) = pending.guessed_tenant {
                    snapshot.map(tenant.id).prefetch(&tenant.id);
                }
            }
            // Its index.
            1 => {
                if let Some(KnownTenant { id, .. }) = pending.guessed_tenant
                    && let Some(index) = snapshot.map(id).get(&id)
                {
                    index.prefetch_fields();
                    pending.index = Some(index);
                }
            }
            // The parts it points to, then the path tries the event is read with.
            2 => {
                if let Some(index) = pending.index {
                    index.prefetch_parts();
                }
            }
            3 => {
                if let Some(index) = pending.index {
                    index.prefetch_tries();
                }
            }
            // Read the event; ask for the type table.
            4 => {
                let Some(index) = pending.index else { return };
                let guessed = pending.guessed_tenant;
                let mut guessed_right = false;
                let read = read_line(
                    pending.line,
                    guessed,
                    |tenant| {
                        guessed_right = guessed.is_some_and(|known| known.id == tenant);
                        guessed_right.then_some(index)
                    },
                    &mut pending.found,
                );
                pending.event = match read {
                    Ok((event, Some(_))) => {
                        index.base().prefetch_type(event.event_type);
                        Some(Ok(event))
                    }
                    Err(error) if guessed_right => Some(Err(error)),
                    // Read with another tenant, or failed before its tenant: matched alone.
                    _ => None,
                };
            }
            // The lists of wildcard patterns its type is matched with, then the postings.
            5 => {
                let Some((index, event)) = pending.ready() else {
                    return;
                };
                index.base().prefetch_groups(event.event_type);
            }
            6 => {
                let Some((index, event)) = pending.ready() else {
                    return;
                };
                let base = index.base();
                base.type_ranges(event.event_type, |range| {
                    prefetch::slice(base.postings(range));
                    pending.ranges.push(range);
                });
            }
            // The candidates, and the leaves they start with.
            7 => {
                let Some((index, _)) = pending.ready() else {
                    return;
                };
                for range in &pending.ranges {
                    pending
                        .hits
                        .extend_from_slice(index.base().postings(*range));
                }
                index
                    .base()
                    .prefetch_level(PrefetchLevel::Leaves, &pending.hits);
            }
            8 => {
                let Some((index, _)) = pending.ready() else {
                    return;
                };
                index
                    .base()
                    .prefetch_level(PrefetchLevel::Texts, &pending.hits);
            }
            // Turn most candidates down by their first leaf.
            9 => {
                let (Some(index), Some(Ok(event))) = (pending.index, &pending.event) else {
                    return;
                };
                index.clear_memo(&mut pending.memo);
                let values = EventValues {
                    event,
                    found: &pending.found,
                };
                index.turn_down(&mut pending.hits, &values, &mut pending.memo);
                index.base().prefetch_slots(&pending.hits);
            }
            // The rest of the conditions of those left.
            10 => {
                let Some((index, _)) = pending.ready() else {
                    return;
                };
                index.base().prefetch_nodes(&pending.hits);
            }
            _ => {
                self.out.clear();
                let pending = &mut self.ring[slot];
                let result = match (pending.index, &pending.event) {
                    (Some(index), Some(Ok(event))) => {
                        index.select_among(
                            &mut pending.hits,
                            event,
                            &pending.found,
                            &mut pending.memo,
                            &mut self.out,
                        );
                        Ok(())
                    }
                    (_, Some(Err(error))) => Err(error.clone()),
                    _ => snapshot.engine.match_json(pending.line, &mut self.out),
                };
                each(result.map(|()| self.out.as_slice()));
            }
        }
    }
}

impl Engine {
    /// Matches every line (an event as published to `herald.events`) and calls `each` with
    /// each line's matches, in dispatch order, or the reason it could not be read, in the
    /// order of `lines`: the same results as [`Engine::match_json`] on each line.
    ///
    /// When the index outgrows the caches, the lines go through the pipeline (see the module
    /// documentation), from one snapshot of the engine: changes made meanwhile are seen by the
    /// next call. A small index is matched line by line, which is faster when every read hits
    /// the cache.
    pub fn match_lines<L: AsRef<str>>(
        &self,
        lines: &[L],
        mut each: impl FnMut(Result<&[Matched], EventLineError>),
    ) {
        if self.len() >= PIPELINE_FROM_ACTIONS {
            return self.match_lines_pipelined(lines, each);
        }
        let mut out = Vec::new();
        for line in lines {
            out.clear();
            let result = self.match_json(line.as_ref(), &mut out);
            each(result.map(|()| out.as_slice()));
        }
    }

    /// [`Engine::match_lines`] through the pipeline, whatever the size of the index.
    pub fn match_lines_pipelined<L: AsRef<str>>(
        &self,
        lines: &[L],
        mut each: impl FnMut(Result<&[Matched], EventLineError>),
    ) {
        let snapshot = Snapshot::new(self);
        let mut pipeline = Pipeline {
            snapshot: &snapshot,
            ring: Default::default(),
            out: Vec::new(),
        };
        // At step `s`, stage `k` works on event `s - k`; the last stages go first, so that an
        // event leaves before a newer one takes its place in the ring.
        for step in 0..lines.len() + STAGES - 1 {
            for stage in (0..STAGES).rev() {
                let Some(event) = step.checked_sub(stage).filter(|e| *e < lines.len()) else {
                    continue;
                };
                pipeline.advance(stage, event % RING, lines[event].as_ref(), &mut each);
            }
        }
    }
}
