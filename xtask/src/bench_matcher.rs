//! `cargo xtask bench matcher`: the matching benchmark on every workload size, one table.
//!
//! Builds `herald-matcher` optimised, generates the workloads once under
//! `target/bench/matcher/` (1k, 10k, 100k and 1M actions, and 100k skewed), runs
//! `herald-matcher bench` on each and prints the figures, also written to `results.jsonl`.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use serde_json::Value;

const WORKLOADS: [(&str, usize, bool); 5] = [
    ("1k", 1_000, false),
    ("10k", 10_000, false),
    ("100k", 100_000, false),
    ("1M", 1_000_000, false),
    ("100k-skewed", 100_000, true),
];

pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    eprintln!("==> building herald-matcher (release)");
    let built = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "herald-matcher"])
        .status()?;
    if !built.success() {
        bail!("the build failed");
    }
    let binary = root.join("target/release/herald-matcher");
    let dir = root.join("target/bench/matcher");
    let mut results = Vec::new();
    for (name, actions, skewed) in WORKLOADS {
        let workload = dir.join(name);
        if !workload.join("events.jsonl").exists() {
            eprintln!("==> generating the {name} workload");
            let mut command = Command::new(&binary);
            command
                .args(["workload", "--actions", &actions.to_string(), "--dir"])
                .arg(&workload);
            if skewed {
                command.arg("--skewed");
            }
            if !command.status()?.success() {
                bail!("generating {name} failed");
            }
        }
        eprintln!("==> matching {name}");
        let output = Command::new(&binary)
            .arg("bench")
            .arg("--actions")
            .arg(workload.join("actions.jsonl"))
            .arg("--events")
            .arg(workload.join("events.jsonl"))
            .output()
            .context("running herald-matcher bench")?;
        if !output.status.success() {
            bail!(
                "bench {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut figures: Value = serde_json::from_slice(&output.stdout).context("bench output")?;
        figures["workload"] = Value::from(name);
        results.push(figures);
    }
    let mut file = String::new();
    println!(
        "{:<12} {:>9} {:>12} {:>12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>10}",
        "workload",
        "actions",
        "events/s",
        "one by one",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "B/action",
        "load s",
        "update p99"
    );
    for r in &results {
        println!(
            "{:<12} {:>9} {:>12} {:>12} {:>8} {:>8} {:>9} {:>8} {:>8} {:>10}",
            r["workload"].as_str().unwrap_or(""),
            r["actions"].to_string(),
            format!("{:.0}", r["events_per_s"].as_f64().unwrap_or(0.0)),
            format!("{:.0}", r["events_per_s_single"].as_f64().unwrap_or(0.0)),
            r["p50_us"].to_string(),
            r["p99_us"].to_string(),
            r["p999_us"].to_string(),
            format!("{:.0}", r["bytes_per_action"].as_f64().unwrap_or(0.0)),
            r["load_s"].to_string(),
            r["update_p99_us"].to_string(),
        );
        file.push_str(&r.to_string());
        file.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), file)?;
    eprintln!("results written to {}", dir.join("results.jsonl").display());
    Ok(ExitCode::SUCCESS)
}
