//! What every benchmark shares: clocks, CPU time, waiting, percentiles and the machine's name.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Wall-clock time in nanoseconds since the Unix epoch (comparable across processes).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far, from /proc.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .with_context(|| format!("field {index} of /proc/{pid}/stat"))
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command; the
    // kernel counts them in ticks of 1/100 s.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds the whole machine has been busy (every core; all but idle and I/O wait), from
/// `/proc/stat`: processes are not all of it (the kernel's loopback networking and writeback
/// run outside them).
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, t)| t)
        .sum();
    Ok(busy / 100.0)
}

/// Waits until `reached` says yes, polling every `poll`, or fails after `limit` with the
/// text `progress` gives.
pub fn wait_until(
    what: &str,
    limit: Duration,
    poll: Duration,
    mut reached: impl FnMut() -> anyhow::Result<bool>,
    progress: impl Fn() -> String,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !reached()? {
        if started.elapsed() > limit {
            bail!(
                "{what}: not done after {:.0?} ({}); see the benchmark's logs/ folder",
                limit,
                progress()
            );
        }
        std::thread::sleep(poll);
    }
    Ok(())
}

/// The `fraction` percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], fraction: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `value` rounded to `decimals` decimal places, for the report.
pub fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// This machine's CPU count and model, for the report's header.
pub fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus, model)
}
