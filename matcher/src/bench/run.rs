//! `herald-matcher bench`: loads actions, matches every event on one thread, prints one JSON
//! line of figures. Outside the test suite; `cargo xtask bench matcher` runs it on generated
//! workloads of every size.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use herald_common::action::ActionSpec;
use herald_common::ids::{ActionId, TenantId};
use serde_json::{Value, json};

use crate::engine::Engine;

pub struct BenchArgs {
    pub actions: PathBuf,
    pub events: PathBuf,
    pub out: Option<PathBuf>,
}

/// The action id given to line `index` of the actions file, so a match maps back to its line.
fn id_of_line(index: usize) -> ActionId {
    ActionId::from(uuid::Uuid::from_u128(index as u128 + 1))
}

fn line_of_id(id: ActionId) -> usize {
    (id.as_uuid().as_u128() - 1) as usize
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

/// Parses action lines as the API would; `first` is the index of the first line.
fn parse_actions(
    lines: &[String],
    first: usize,
) -> anyhow::Result<Vec<(TenantId, ActionId, ActionSpec)>> {
    let mut specs = Vec::with_capacity(lines.len());
    for (offset, line) in lines.iter().enumerate() {
        let i = first + offset;
        let mut value: Value =
            serde_json::from_str(line).with_context(|| format!("action line {i}"))?;
        let tenant: TenantId = value["tenant_id"]
            .as_str()
            .context("tenant_id")?
            .parse()
            .with_context(|| format!("action line {i}: tenant_id"))?;
        if let Some(map) = value.as_object_mut() {
            map.remove("tenant_id");
        }
        let spec =
            ActionSpec::parse(&value).map_err(|e| anyhow::anyhow!("action line {i}: {e}"))?;
        specs.push((tenant, id_of_line(i), spec));
    }
    Ok(specs)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let action_lines = read_lines(&args.actions)?;
    let event_lines = read_lines(&args.events)?;

    // Load: parse and validate every action as the API would, then build the index.
    let started = Instant::now();
    // Parsing is independent per line: every core takes a share (matching stays on one).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = action_lines.len().div_ceil(threads).max(1);
    let parts: Vec<anyhow::Result<Vec<(TenantId, ActionId, ActionSpec)>>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = action_lines
                .chunks(share)
                .enumerate()
                .map(|(part, lines)| scope.spawn(move || parse_actions(lines, part * share)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a parser thread panicked")))
                })
                .collect()
        });
    let mut specs = Vec::with_capacity(action_lines.len());
    for part in parts {
        specs.extend(part?);
    }
    drop(action_lines);
    let parse_s = started.elapsed().as_secs_f64();
    let before_index = resident_bytes();
    let engine = Engine::new();
    engine.load(specs.iter().map(|(t, id, s)| (*t, *id, s)));
    let load_s = started.elapsed().as_secs_f64();
    let index_bytes = resident_bytes().saturating_sub(before_index);
    if engine.len() != specs.len() {
        bail!("{} actions loaded of {}", engine.len(), specs.len());
    }

    // Throughput: every event once, parsing included, no timers inside the loop.
    let mut matches = Vec::new();
    let mut total_matches = 0u64;
    let mut checksum: u128 = 0;
    let mut out = args
        .out
        .as_ref()
        .map(|p| std::fs::File::create(p).map(std::io::BufWriter::new))
        .transpose()?;
    let started = Instant::now();
    for line in &event_lines {
        matches.clear();
        engine.match_json(line, &mut matches)?;
        total_matches += matches.len() as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let events_per_s = event_lines.len() as f64 / elapsed;

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
    let step = (specs.len() / 5000).max(1);
    for (tenant, id, spec) in specs.iter().step_by(step) {
        let started = Instant::now();
        engine.remove(*tenant, *id);
        updates.push(started.elapsed().as_nanos() as u64);
        let started = Instant::now();
        engine.put(*tenant, *id, spec);
        updates.push(started.elapsed().as_nanos() as u64);
    }
    updates.sort_unstable();

    let report = json!({
        "actions": specs.len(),
        "events": event_lines.len(),
        "events_per_s": events_per_s.round(),
        "p50_us": percentile(&latencies, 50.0),
        "p99_us": percentile(&latencies, 99.0),
        "p999_us": percentile(&latencies, 99.9),
        "bytes_per_action": (index_bytes as f64 / specs.len().max(1) as f64).round(),
        "load_s": (load_s * 1000.0).round() / 1000.0,
        "parse_s": (parse_s * 1000.0).round() / 1000.0,
        "update_p50_us": percentile(&updates, 50.0),
        "update_p99_us": percentile(&updates, 99.0),
        "matches": total_matches,
        "checksum": u64::try_from(checksum).map_or_else(|_| json!(checksum.to_string()), |c| json!(c)),
    });
    println!("{report}");
    Ok(())
}
