//! `cargo xtask bench scheduler`: how many due jobs `herald-scheduler` releases per second and
//! how late, with every job kept in PostgreSQL until the broker confirmed its release.
//!
//! Method. A stack of its own (broker, database with fsync on, the chosen number of scheduler
//! replicas, no other service) and, inside this process, a consumer of a queue `bench.released`
//! that every job is released to. Each job's body is its sequence number and due time (Unix
//! nanoseconds); the consumer subtracts the due time from the wall clock when the message
//! arrives (same machine, same clock), so lateness covers the claim, the publish with
//! confirms and the broker's hand-over to a consumer. Three scenarios, in order:
//!
//! - `far`: `--far` jobs due in an hour are stored first and stay for the whole run, so every
//!   later scenario shows that short delays are not held up behind long ones;
//! - `paced`: `--rate` jobs per second fall due for `--seconds` seconds (stored in PostgreSQL
//!   ahead of time, as the intake would have). Reports released jobs per second over the span
//!   and lateness p50 / p99 / p99.9 / max;
//! - `intake`: jobs handed over through the broker as the executor hands over retries, one per
//!   message, at `--intake-rate` per second for `--seconds` seconds, with delays of 0.2, 1, 2
//!   and 5 s in turn. Lateness here includes the hand-over, the insert and the release;
//! - `backlog`: `--backlog` jobs all due at once: how fast a pile of overdue work drains.
//!
//! Every scenario checks that each job arrived, and counts any that arrived twice. Results go
//! to stdout as a table and to `target/bench/scheduler/results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use herald_common::broker::Outgoing;
use herald_common::broker::topology::{DELAYED_EXCHANGE, DELAYED_ROUTING_KEY};
use herald_common::config::DatabaseConfig;
use herald_common::messages::DelayedJob;
use herald_common::store::Store;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::bench_support::{machine, percentile, round_to, unix_nanos, wait_until};
use crate::stack::{PreferredPorts, Stack, StackOptions};

const SCHEDULER: &str = "herald-scheduler";
/// The queue every bench job is released to (through the default exchange).
const RELEASED_QUEUE: &str = "bench.released";
/// Jobs stored per insert when preparing a scenario.
const ROWS_PER_INSERT: usize = 5000;
/// How long a scenario may take beyond its last due time before it is declared failed.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// The delays the intake scenario cycles through, in milliseconds.
const INTAKE_DELAYS_MS: [u64; 4] = [200, 1000, 2000, 5000];

pub struct SchedulerBenchOptions {
    pub rate: u32,
    pub intake_rate: u32,
    pub seconds: u32,
    pub backlog: usize,
    pub far: usize,
    pub replicas: usize,
}

/// What the consumer has seen: per job, how many times it arrived and how late the first time.
struct Arrivals {
    /// Times each sequence number arrived.
    counts: Vec<u8>,
    /// Lateness of each first arrival, in microseconds.
    lateness_us: Vec<u64>,
    received: u64,
    first_ns: u64,
    last_ns: u64,
}

impl Arrivals {
    fn new(jobs: usize) -> Self {
        Self {
            counts: vec![0; jobs],
            lateness_us: Vec::with_capacity(jobs),
            received: 0,
            first_ns: u64::MAX,
            last_ns: 0,
        }
    }

    fn record(&mut self, body: &[u8]) {
        let now = unix_nanos();
        let (Some(seq), Some(due)) = (read_u64(body, 0), read_u64(body, 8)) else {
            return;
        };
        let Some(count) = self.counts.get_mut(seq as usize) else {
            return;
        };
        *count = count.saturating_add(1);
        if *count == 1 {
            self.received += 1;
            self.lateness_us.push(now.saturating_sub(due) / 1000);
            self.first_ns = self.first_ns.min(now);
            self.last_ns = self.last_ns.max(now);
        }
    }
}

fn read_u64(body: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
}

fn job(seq: u64, due_ns: u64) -> DelayedJob {
    let mut body = Vec::with_capacity(16);
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(&due_ns.to_le_bytes());
    DelayedJob {
        id: format!("bench:{seq}:{due_ns}"),
        due_at: Utc.timestamp_nanos(due_ns as i64),
        exchange: String::new(),
        routing_key: RELEASED_QUEUE.into(),
        message_type: "bench.job".into(),
        body,
        headers: BTreeMap::new(),
    }
}

fn far_job(n: u64, due: DateTime<Utc>) -> DelayedJob {
    DelayedJob {
        id: format!("bench:far:{n}"),
        due_at: due,
        exchange: String::new(),
        routing_key: "bench.never".into(),
        message_type: "bench.job".into(),
        body: Vec::new(),
        headers: BTreeMap::new(),
    }
}

async fn insert(store: &Store, jobs: &[DelayedJob]) -> anyhow::Result<()> {
    for chunk in jobs.chunks(ROWS_PER_INSERT) {
        store.insert_delayed_jobs(chunk).await?;
    }
    Ok(())
}

/// Consumes `bench.released` into a fresh `Arrivals` for each scenario.
async fn start_consumer(amqp_url: &str, current: Arc<Mutex<Arrivals>>) -> anyhow::Result<()> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            RELEASED_QUEUE.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            RELEASED_QUEUE.into(),
            "bench".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        let _keep = connection;
        while let Some(Ok(delivery)) = consumer.next().await {
            current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&delivery.data);
        }
    });
    Ok(())
}

/// Publishes `jobs` as delayed-job hand-overs, one per message, at `rate` per second, each due
/// its delay after the moment it is published.
async fn publish_intake(amqp_url: &str, jobs: usize, rate: u32) -> anyhow::Result<()> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    let mut confirms = std::collections::VecDeque::new();
    for seq in 0..jobs as u64 {
        tokio::time::sleep_until(started + interval.mul_f64(seq as f64)).await;
        let delay_ms = INTAKE_DELAYS_MS[seq as usize % INTAKE_DELAYS_MS.len()];
        let job = job(seq, unix_nanos() + delay_ms * 1_000_000);
        let outgoing = Outgoing::message(DELAYED_EXCHANGE, DELAYED_ROUTING_KEY, &job);
        let confirm = channel
            .basic_publish(
                outgoing.exchange.as_str().into(),
                outgoing.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &outgoing.body,
                outgoing.properties,
            )
            .await?;
        confirms.push_back(confirm);
        while confirms.len() > 1000 {
            if let Some(confirm) = confirms.pop_front() {
                confirm.await?;
            }
        }
    }
    for confirm in confirms {
        confirm.await?;
    }
    Ok(())
}

/// Waits until every job of the scenario has arrived, then summarises it.
fn settle(
    name: &str,
    arrivals: &Arc<Mutex<Arrivals>>,
    jobs: usize,
    limit: Duration,
) -> anyhow::Result<Value> {
    let received = || arrivals.lock().unwrap_or_else(|e| e.into_inner()).received;
    wait_until(
        name,
        limit,
        Duration::from_millis(50),
        || Ok(received() >= jobs as u64),
        || format!("{} of {jobs} jobs released", received()),
    )?;
    // Anything released twice arrives right behind the first copy.
    std::thread::sleep(Duration::from_secs(1));
    let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    let duplicates: u64 = seen
        .counts
        .iter()
        .map(|&c| u64::from(c.saturating_sub(1)))
        .sum();
    seen.lateness_us.sort_unstable();
    let late = &seen.lateness_us;
    let span_s = (seen.last_ns.saturating_sub(seen.first_ns)) as f64 / 1e9;
    let ms = |us: u64| round_to(us as f64 / 1000.0, 1);
    Ok(json!({
        "scenario": name,
        "jobs": jobs,
        "duplicates": duplicates,
        "span_s": round_to(span_s, 2),
        "released_per_s": round_to(jobs as f64 / span_s.max(1e-3), 0),
        "lateness_ms": {
            "p50": ms(percentile(late, 0.50)),
            "p99": ms(percentile(late, 0.99)),
            "p999": ms(percentile(late, 0.999)),
            "max": ms(late.last().copied().unwrap_or(0)),
        },
    }))
}

fn table(rows: &[Value]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>5}",
        "scenario", "jobs", "jobs/s", "span s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "dups"
    );
    for row in rows {
        let late = |key: &str| row["lateness_ms"][key].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:<8} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>5}",
            row["scenario"].as_str().unwrap_or(""),
            row["jobs"],
            format!("{:.0}", row["released_per_s"].as_f64().unwrap_or(0.0)),
            row["span_s"],
            late("p50"),
            late("p99"),
            late("p999"),
            late("max"),
            row["duplicates"],
        );
    }
    out
}

pub fn run(root: &Path, bench: SchedulerBenchOptions) -> anyhow::Result<ExitCode> {
    if bench.rate == 0 || bench.intake_rate == 0 || bench.seconds == 0 || bench.replicas == 0 {
        bail!("--rate, --intake-rate, --seconds and --replicas must be positive");
    }
    crate::up::build(root, true)?;
    let base = root.join("target/bench/scheduler");
    if base.exists() {
        std::fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;
    }
    let replicas = BTreeMap::from([
        ("herald-ingest", 0),
        ("herald-matcher", 0),
        ("herald-executor", 0),
        (SCHEDULER, bench.replicas),
    ]);
    let stack_options = StackOptions {
        base: base.clone(),
        bin_dir: root.join("target/release"),
        ports: PreferredPorts {
            amqp: 5684,
            management: 15684,
            postgres: 5444,
            api: 8182,
            ops: 9300,
        },
        fast_database: false,
        replicas,
        env: vec![("HERALD_TELEMETRY__LOG_LEVEL".into(), "warn".into())],
    };
    let mut stack = Stack::start(stack_options)?;
    stack.wait_ready(Duration::from_secs(60))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let store = runtime
        .block_on(Store::connect(&DatabaseConfig {
            url: stack.database_url.clone(),
            max_connections: 4,
            acquire_timeout_ms: 10_000,
            migrate_on_start: false,
        }))
        .context("connecting to the bench database")?;
    let arrivals = Arc::new(Mutex::new(Arrivals::new(0)));
    runtime.block_on(start_consumer(&stack.amqp_url, arrivals.clone()))?;
    let fresh = |jobs: usize| {
        *arrivals.lock().unwrap_or_else(|e| e.into_inner()) = Arrivals::new(jobs);
    };
    let mut rows = Vec::new();

    eprintln!("==> far: {} jobs due in an hour, kept all run", bench.far);
    let far_due = Utc::now() + chrono::Duration::hours(1);
    let far: Vec<DelayedJob> = (0..bench.far as u64).map(|n| far_job(n, far_due)).collect();
    runtime.block_on(insert(&store, &far))?;
    drop(far);

    let paced = bench.rate as usize * bench.seconds as usize;
    eprintln!(
        "==> paced: {paced} jobs falling due at {}/s for {} s",
        bench.rate, bench.seconds
    );
    fresh(paced);
    let start_ns = unix_nanos() + 10_000_000_000; // time to store them all first
    let step_ns = 1_000_000_000 / u64::from(bench.rate);
    let jobs: Vec<DelayedJob> = (0..paced as u64)
        .map(|seq| job(seq, start_ns + seq * step_ns))
        .collect();
    let stored = Instant::now();
    runtime.block_on(insert(&store, &jobs))?;
    drop(jobs);
    eprintln!("    stored in {:.1?}", stored.elapsed());
    if unix_nanos() > start_ns {
        bail!("storing the paced jobs took longer than the 10 s lead; lower --rate or --seconds");
    }
    let limit = Duration::from_secs(u64::from(bench.seconds) + 10) + SETTLE_LIMIT;
    rows.push(settle("paced", &arrivals, paced, limit)?);

    let intake = bench.intake_rate as usize * bench.seconds as usize;
    eprintln!(
        "==> intake: {intake} hand-overs through the broker at {}/s, delays 0.2-5 s",
        bench.intake_rate
    );
    fresh(intake);
    runtime.block_on(publish_intake(&stack.amqp_url, intake, bench.intake_rate))?;
    rows.push(settle("intake", &arrivals, intake, SETTLE_LIMIT)?);

    eprintln!("==> backlog: {} jobs due at once", bench.backlog);
    fresh(bench.backlog);
    let due_ns = unix_nanos() + 5_000_000_000;
    let jobs: Vec<DelayedJob> = (0..bench.backlog as u64)
        .map(|seq| job(seq, due_ns))
        .collect();
    runtime.block_on(insert(&store, &jobs))?;
    drop(jobs);
    rows.push(settle("backlog", &arrivals, bench.backlog, SETTLE_LIMIT)?);

    runtime.block_on(store.pool().close());
    drop(runtime);
    stack.stop();

    let (cpus, model) = machine();
    println!(
        "herald-scheduler, {} replica(s): {cpus} CPUs ({model}), shared with RabbitMQ, PostgreSQL (fsync on) and the consumer; {} far-future jobs stored throughout",
        bench.replicas, bench.far
    );
    print!("{}", table(&rows));
    let results = json!({
        "machine": {"cpus": cpus, "model": model},
        "replicas": bench.replicas,
        "far_jobs": bench.far,
        "scenarios": rows,
    });
    let path = base.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
