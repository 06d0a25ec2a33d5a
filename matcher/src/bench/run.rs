//! `herald-matcher bench`: loads actions, matches every event on one thread, prints one JSON
//! line of figures. Outside the test suite; `cargo xtask bench matcher` runs it on generated
//! workloads of every size.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use herald_common::action::ActionMatching;
use herald_common::ids::{ActionId, TenantId};
use herald_common::json_tree::Json;
use serde_json::json;

use herald_engine::{Engine, Loader, MatchSpec};

pub struct BenchArgs {
    pub actions: PathBuf,
    pub events: PathBuf,
    pub out: Option<PathBuf>,
}

/// The action id given to the line at byte `offset` of the actions file, so that a match
/// maps back to its line (through the table of line starts) without workers that read parts
/// of the file having to agree on line numbers first.
fn id_of_offset(offset: u64) -> ActionId {
    ActionId::from(uuid::Uuid::from_u128(u128::from(offset) + 1))
}

/// The start of every action line, in order: maps an action id back to its line index.
struct LineStarts(Vec<u64>);

impl LineStarts {
    fn line_of(&self, id: ActionId) -> usize {
        let offset = (id.as_uuid().as_u128() - 1) as u64;
        self.0.partition_point(|start| *start < offset)
    }
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .map(|l| l.map_err(Into::into))
        .collect()
}

/// One action line: its tenant and what the engine needs, validated. The matcher reads what it
/// matches on (patterns, conditions, source, priority, mode, retry attempts); the handler
/// settings were checked when the action was saved and are not read here.
fn parse_action(line: &str, offset: u64) -> anyhow::Result<(TenantId, ActionMatching)> {
    let at = || format!("action line at byte {offset}");
    let mut json = Json::parse(line).with_context(at)?;
    let Json::Object(members) = &mut json else {
        bail!("{}: not a JSON object", at());
    };
    let tenant: TenantId = members
        .remove("tenant_id")
        .as_ref()
        .and_then(Json::as_str)
        .with_context(|| format!("{}: tenant_id is required", at()))?
        .parse()
        .with_context(|| format!("{}: tenant_id", at()))?;
    let action = ActionMatching::from_json(&json).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
    Ok((tenant, action))
}

type Item = (TenantId, ActionId, MatchSpec);

/// What one worker read from its part of the file.
#[derive(Default)]
struct Part {
    /// Where each of its lines starts.
    starts: Vec<u64>,
    /// Live actions it read whose tenants another loader owns, by loader.
    elsewhere: Vec<Vec<Item>>,
}

/// The tenant a line names, found without parsing it: the text after its last `"tenant_id":"`.
/// Only a guess (a string value could hold that text too), used to share lines between workers
/// so that each line is parsed by exactly one of them.
fn guess_tenant(line: &str) -> Option<TenantId> {
    const KEY: &[u8] = b"\"tenant_id\":\"";
    let at = memchr::memmem::rfind(line.as_bytes(), KEY)? + KEY.len();
    let rest = &line[at..];
    rest[..rest.find('"')?].parse().ok()
}

/// Reads the whole file and takes the lines whose tenant `loader` owns (by a cheap guess, see
/// [`guess_tenant`]): parses, validates and compiles them. A line whose guess was wrong is set
/// aside for its owner. Records where the lines starting in bytes `start..end` begin. Reading
/// every line on every worker costs little next to parsing; handing half the actions from one
/// worker to another would cost fresh memory for all of them, which is slow to touch here.
fn read_part(
    path: &Path,
    (start, end): (u64, u64),
    loader: &mut Loader<'_>,
    parts: usize,
) -> anyhow::Result<Part> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut part = Part {
        elsewhere: (0..parts).map(|_| Vec::new()).collect(),
        ..Part::default()
    };
    let mut offset = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 {
            break;
        }
        let text = line.trim_end();
        if !text.is_empty() {
            if (start..end).contains(&offset) {
                part.starts.push(offset);
            }
            let owner = guess_tenant(text).map_or(0, |t| loader.part_of(t));
            if owner == loader.part() {
                let (tenant, action) = parse_action(text, offset)?;
                if action.enabled {
                    let (id, spec) = (id_of_offset(offset), MatchSpec::from(action));
                    match loader.part_of(tenant) {
                        own if own == loader.part() => loader.add(tenant, id, &spec),
                        other => part.elsewhere[other].push((tenant, id, spec)),
                    }
                }
            }
        }
        offset += read as u64;
    }
    Ok(part)
}

/// Loads the actions file on every core: each worker reads a share of the file, then each
/// loader compiles what the others set aside for it and builds its shards.
fn load(engine: &Engine, path: &Path) -> anyhow::Result<LineStarts> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("opening {}", path.display()))?
        .len();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut loaders = engine.loaders(workers);
    let parts = loaders.len();
    let read: Vec<anyhow::Result<Part>> = std::thread::scope(|scope| {
        let handles: Vec<_> = loaders
            .iter_mut()
            .enumerate()
            .map(|(w, loader)| {
                let range = (
                    size * w as u64 / parts as u64,
                    size * (w as u64 + 1) / parts as u64,
                );
                scope.spawn(move || read_part(path, range, loader, parts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a load worker panicked")))
            })
            .collect()
    });
    let mut starts = Vec::new();
    let mut handed: Vec<Vec<Vec<Item>>> = (0..parts).map(|_| Vec::new()).collect();
    for part in read {
        let part = part?;
        starts.extend(part.starts);
        for (to, items) in part.elsewhere.into_iter().enumerate() {
            handed[to].push(items);
        }
    }
    std::thread::scope(|scope| {
        for (mut loader, batches) in loaders.into_iter().zip(handed) {
            scope.spawn(move || {
                for (tenant, id, spec) in batches.iter().flatten() {
                    loader.add(*tenant, *id, spec);
                }
                loader.finish();
            });
        }
    });
    starts.shrink_to_fit();
    Ok(LineStarts(starts))
}

/// Every 16th live action of the file, read again by offset, to time updates with.
fn update_sample(path: &Path, lines: &LineStarts) -> anyhow::Result<Vec<Item>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let mut sample = Vec::new();
    let mut buffer = Vec::new();
    for (index, start) in lines.0.iter().enumerate().step_by(16) {
        let end = lines.0.get(index + 1).copied().unwrap_or(size);
        buffer.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buffer, *start)?;
        let text = std::str::from_utf8(&buffer)
            .context("action line")?
            .trim_end();
        let (tenant, action) = parse_action(text, *start)?;
        if action.enabled {
            sample.push((tenant, id_of_offset(*start), MatchSpec::from(action)));
        }
    }
    Ok(sample)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let event_lines = read_lines(&args.events)?;

    // Load: read, validate and index every action, on every core (matching stays on one).
    // The index's memory is counted from its structures (see `engine::Engine::index_bytes`);
    // the growth of resident memory is reported beside it, and also holds what the allocator
    // keeps of the load's transient work and the benchmark's own table of line starts.
    let before_load = resident_bytes();
    let started = Instant::now();
    let engine = Engine::new();
    let lines = load(&engine, &args.actions)?;
    let load_s = started.elapsed().as_secs_f64();
    let resident_growth = resident_bytes().saturating_sub(before_load);
    let index_bytes = engine.index_bytes();
    let sample = update_sample(&args.actions, &lines)?;
    let count = engine.len();
    let line_of_id = |id| lines.line_of(id);

    // Throughput: every event, parsing included, no timers inside the loop.
    let mut matches = Vec::new();
    let mut total_matches = 0u64;
    let mut checksum: u128 = 0;
    let mut out = args
        .out
        .as_ref()
        .map(|p| std::fs::File::create(p).map(std::io::BufWriter::new))
        .transpose()?;
    // Events per second two ways, three passes each, interleaved, the medians reported (on a
    // shared machine one pass can be slowed by others): in batches through `match_lines`, as
    // the service matches, and one `match_json` call per event.
    let mut batched = Vec::new();
    let mut single = Vec::new();
    for _ in 0..3 {
        total_matches = 0;
        let mut failed = None;
        let started = Instant::now();
        engine.match_lines(&event_lines, |result| match result {
            Ok(matched) => total_matches += matched.len() as u64,
            Err(error) => failed = Some(error),
        });
        batched.push(event_lines.len() as f64 / started.elapsed().as_secs_f64());
        if let Some(error) = failed {
            return Err(error.into());
        }
        let started = Instant::now();
        for line in &event_lines {
            matches.clear();
            engine.match_json(line, &mut matches)?;
        }
        single.push(event_lines.len() as f64 / started.elapsed().as_secs_f64());
    }
    let median = |mut rates: Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[1]
    };

    // Latency per call, and the checksum and output from the same pass.
    let mut latencies = Vec::with_capacity(event_lines.len());
    for (e, line) in event_lines.iter().enumerate() {
        matches.clear();
        let started = Instant::now();
        engine.match_json(line, &mut matches)?;
        latencies.push(started.elapsed().as_nanos() as u64);
        for action in &matches {
            checksum += line_of_id(action.id) as u128 * (e as u128 + 1);
        }
        if let Some(out) = out.as_mut() {
            let indexes: Vec<String> = matches
                .iter()
                .map(|a| line_of_id(a.id).to_string())
                .collect();
            writeln!(out, "{e}\t{}", indexes.join(","))?;
        }
    }
    latencies.sort_unstable();

    // Updates: take an action out and put it back, timing each call.
    let mut updates = Vec::new();
    for (tenant, id, spec) in &sample {
        let started = Instant::now();
        engine.remove(*tenant, *id);
        updates.push(started.elapsed().as_nanos() as u64);
        let started = Instant::now();
        engine.put(*tenant, *id, spec);
        updates.push(started.elapsed().as_nanos() as u64);
    }
    updates.sort_unstable();

    let report = json!({
        "actions": count,
        "events": event_lines.len(),
        "events_per_s": median(batched).round(),
        "events_per_s_single": median(single).round(),
        "p50_us": percentile(&latencies, 50.0),
        "p99_us": percentile(&latencies, 99.0),
        "p999_us": percentile(&latencies, 99.9),
        "bytes_per_action": (index_bytes as f64 / count.max(1) as f64).round(),
        "resident_bytes_per_action": (resident_growth as f64 / count.max(1) as f64).round(),
        "load_s": (load_s * 1000.0).round() / 1000.0,
        "update_p50_us": percentile(&updates, 50.0),
        "update_p99_us": percentile(&updates, 99.0),
        "matches": total_matches,
        "checksum": u64::try_from(checksum).map_or_else(|_| json!(checksum.to_string()), |c| json!(c)),
    });
    println!("{report}");
    Ok(())
}
