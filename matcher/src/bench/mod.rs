//! The matching benchmark and its workload generator, run as `herald-matcher bench` and
//! `herald-matcher workload` (see `cargo xtask bench matcher`).

mod run;
pub mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use run::{BenchArgs, run};
pub use workload::Workload;

#[derive(Debug, Parser)]
#[command(name = "herald-matcher", about = "Herald's matching benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Load actions, match every event on one thread, print one JSON line of figures.
    Bench {
        /// Actions, one JSON object per line (as POST /v1/actions takes them, plus tenant_id).
        #[arg(long)]
        actions: PathBuf,
        /// Events, one JSON object per line (as published to herald.events, with tenant_id).
        #[arg(long)]
        events: PathBuf,
        /// Write each event's matches: its line index, a tab, the matched action lines.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Generate a workload: actions.jsonl and events.jsonl in DIR.
    Workload {
        #[arg(long)]
        actions: usize,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// One tenant holds 20% of the actions and receives 20% of the events.
        #[arg(long)]
        skewed: bool,
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Whether the command line asks for one of these tools rather than the service.
pub fn wanted() -> bool {
    matches!(
        std::env::args().nth(1).as_deref(),
        Some("bench" | "workload")
    )
}

/// Runs the tool the command line names.
pub fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Tool::Bench {
            actions,
            events,
            out,
        } => run(BenchArgs {
            actions,
            events,
            out,
        }),
        Tool::Workload {
            actions,
            events,
            skewed,
            dir,
        } => write_workload(actions, events, skewed, &dir),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald-matcher: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_workload(
    actions: usize,
    events: usize,
    skewed: bool,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let workload = Workload::new(actions, events, skewed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("actions.jsonl"))?);
    workload.write_actions(&mut file)?;
    std::io::Write::flush(&mut file)?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
    workload.write_events(&mut file)?;
    std::io::Write::flush(&mut file)?;
    Ok(())
}
