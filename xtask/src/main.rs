//! Herald's developer commands, so that a person and CI run the same things:
//!
//! - `cargo xtask up`: the whole cluster on a local broker and database, with a demo event;
//! - `cargo xtask test`: the full test suite with a broker and database of its own;
//! - `cargo xtask openapi`: rewrite the committed `openapi.json` from the code;
//! - `cargo xtask docs`: rewrite the README's tables made from the code.

mod api;
mod bench_executor;
mod bench_faults;
mod bench_handlers;
mod bench_latency;
mod bench_load;
mod bench_matcher;
mod bench_matcher_service;
mod bench_scheduler;
mod bench_support;
mod docs;
mod packages;
mod ports;
mod postgres;
mod rabbitmq;
mod smtp_sink;
mod stack;
mod test_suite;
mod tidy;
mod tools_console;
mod tools_kubernetes;
mod tools_observability;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench_handlers::BenchHandler;

#[derive(Parser)]
#[command(about = "Herald's developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmarks, outside the test suite.
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
    /// Start the whole cluster on a local broker and database and show an event becoming a
    /// signed webhook. Runs until Ctrl-C.
    Up {
        /// Build and run optimised binaries.
        #[arg(long)]
        release: bool,
        /// Skip the demo tenant, action and event.
        #[arg(long)]
        no_demo: bool,
    },
    /// Rewrite `openapi.json` from the code (a test fails while it is out of date).
    Openapi,
    /// Rewrite the README's tables made from the code: error codes and configuration.
    Docs,
    /// Run lints and the full test suite against a throwaway broker and database.
    Test {
        /// Skip cargo fmt and clippy.
        #[arg(long)]
        skip_lint: bool,
        /// Arguments passed to the test runner.
        #[arg(last = true)]
        runner_args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// The whole cluster end to end: events over HTTP or the broker at a target rate (or as
    /// fast as possible) to a local receiver; throughput, latency, CPU and memory, a JSON
    /// result and an SVG plot under target/bench/load/.
    Load {
        /// Events per second; 0 sends as fast as the generator can.
        #[arg(long, default_value_t = 5000)]
        rate: u32,
        /// Length of the measured window.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Seconds of load before the window, not measured.
        #[arg(long, default_value_t = 5)]
        warmup: u32,
        /// Webhook actions (each its own destination) every event matches.
        #[arg(long, default_value_t = 1)]
        fanout: usize,
        #[arg(long, value_enum, default_value_t = bench_load::Via::Http)]
        via: bench_load::Via,
        /// Replicas per service: ingest,matcher,executor,scheduler.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 1, 1, 1])]
        replicas: Vec<usize>,
        /// Requests in flight (HTTP) or unconfirmed messages (broker) at once.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Events per HTTP request: more than 1 sends them with `POST /v1/events/batch`.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// A fault at a second of the load, e.g. `kill-executor@20`; repeatable. One of
        /// kill-ingest, kill-matcher, kill-executor, kill-scheduler, broker-restart,
        /// broker-kill, db-restart, db-kill.
        #[arg(long = "fault")]
        faults: Vec<bench_faults::Fault>,
    },
    /// The latency sweep: the same run's floor (a bare broker hop, commit and loopback
    /// request), then the cluster end to end at each rate, one webhook per event; p50, p99
    /// and p99.9 against rate, CPU per event by process, and the budget of one event step by
    /// step, with a plot under target/bench/latency/.
    Latency {
        /// Events per second of each round, in turn.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 100, 400, 2000, 5000])]
        rates: Vec<u32>,
        /// Length of each round's measured window (at least 60 s below 10 events/s).
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        #[arg(long, value_enum, default_value_t = bench_load::Via::Http)]
        via: bench_load::Via,
        /// Writes `sweep-<via>-<name>.json` and `.svg`, so that a run under other settings
        /// does not replace the last.
        #[arg(long)]
        name: Option<String>,
        /// An earlier sweep's JSON to draw dotted in the plot (a before and after).
        #[arg(long)]
        against: Option<std::path::PathBuf>,
    },
    /// The matching engine on 1k to 1M actions and a skewed workload.
    Matcher,
    /// The matcher service on the real broker and database: queued events to durable
    /// executions and confirmed jobs.
    MatcherService {
        /// Events accepted over HTTP by ingest (which publishes them many per message).
        #[arg(long, default_value_t = 200_000)]
        ingest_events: usize,
        /// Events published straight to the broker, one per message.
        #[arg(long, default_value_t = 50_000)]
        outside_events: usize,
    },
    /// One executor process delivering webhooks to a local receiver: deliveries per second
    /// with 1 and 100 destinations, and the latency it adds at a paced rate.
    Executor {
        /// Jobs in each throughput backlog.
        #[arg(long, default_value_t = 50_000)]
        deliveries: usize,
        /// Jobs per second, one per message, in the 10 s latency scenario.
        #[arg(long, default_value_t = 1000)]
        paced_rate: u32,
        /// Destination counts to run, one round each per handler type.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 100])]
        destinations: Vec<usize>,
        /// Handler types to run: the signed webhook, an `http` request with a five-template
        /// JSON body, an email to a mail sink on loopback, a three-step workflow (`http`,
        /// `set`, `http`; not run unless named).
        #[arg(long, value_delimiter = ',', value_enum,
              default_values_t = [BenchHandler::Webhook, BenchHandler::Http, BenchHandler::Email])]
        handlers: Vec<BenchHandler>,
    },
    /// The scheduler releasing due jobs: jobs per second and lateness, paced, handed over
    /// through the broker, and as a backlog, with far-future jobs stored alongside.
    Scheduler {
        /// Jobs falling due per second in the paced scenario.
        #[arg(long, default_value_t = 12_000)]
        rate: u32,
        /// Hand-overs per second through the broker in the intake scenario.
        #[arg(long, default_value_t = 5_000)]
        intake_rate: u32,
        /// Length of the paced and intake scenarios.
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// Jobs due at once in the backlog scenario.
        #[arg(long, default_value_t = 200_000)]
        backlog: usize,
        /// Jobs due in an hour, stored throughout.
        #[arg(long, default_value_t = 100_000)]
        far: usize,
        /// Scheduler replicas.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn write_openapi(root: &std::path::Path) -> anyhow::Result<ExitCode> {
    let path = root.join(herald_ingest::openapi::COMMITTED_PATH);
    std::fs::write(&path, herald_ingest::openapi::document_text())?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let outcome = match cli.command {
        Task::Bench {
            which: Bench::Matcher,
        } => bench_matcher::run(&root),
        Task::Bench {
            which:
                Bench::Load {
                    rate,
                    seconds,
                    warmup,
                    fanout,
                    via,
                    replicas,
                    concurrency,
                    batch,
                    faults,
                },
        } => bench_load::run(
            &root,
            bench_load::LoadOptions {
                rate,
                seconds,
                warmup,
                fanout,
                via,
                replicas: [
                    "herald-ingest",
                    "herald-matcher",
                    "herald-executor",
                    "herald-scheduler",
                ]
                .into_iter()
                .zip(replicas.into_iter().chain(std::iter::repeat(1)))
                .collect(),
                concurrency,
                batch,
                faults,
            },
        ),
        Task::Bench {
            which:
                Bench::MatcherService {
                    ingest_events,
                    outside_events,
                },
        } => bench_matcher_service::run(
            &root,
            bench_matcher_service::ServiceBenchOptions {
                ingest_events,
                outside_events,
            },
        ),
        Task::Bench {
            which:
                Bench::Executor {
                    deliveries,
                    paced_rate,
                    destinations,
                    handlers,
                },
        } => bench_executor::run(
            &root,
            bench_executor::ExecutorBenchOptions {
                deliveries,
                paced_rate,
                destination_counts: destinations,
                handlers,
            },
        ),
        Task::Bench {
            which:
                Bench::Scheduler {
                    rate,
                    intake_rate,
                    seconds,
                    backlog,
                    far,
                    replicas,
                },
        } => bench_scheduler::run(
            &root,
            bench_scheduler::SchedulerBenchOptions {
                rate,
                intake_rate,
                seconds,
                backlog,
                far,
                replicas,
            },
        ),
        Task::Bench {
            which:
                Bench::Latency {
                    rates,
                    seconds,
                    via,
                    name,
                    against,
                },
        } => bench_latency::run(
            &root,
            bench_latency::LatencyOptions {
                rates,
                seconds,
                via,
                name,
                against,
            },
        ),
        Task::Openapi => write_openapi(&root),
        Task::Docs => docs::run(&root),
        Task::Up { release, no_demo } => up::run(&root, up::UpOptions { release, no_demo }),
        Task::Test {
            skip_lint,
            runner_args,
        } => test_suite::run(
            &root,
            test_suite::TestOptions {
                skip_lint,
                runner_args,
            },
        ),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
