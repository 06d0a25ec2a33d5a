//! `cargo xtask bench load`: the whole cluster end to end. Starts a broker, a database (fsync
//! on) and the four services as processes, a fast local receiver, and a load generator that
//! sends events over HTTP or straight to the broker at a target rate (or as fast as it can)
//! for a while; then waits for every delivery. Reports events/s accepted, deliveries/s,
//! end-to-end latency (event sent to webhook received) p50/p99/p99.9, CPU and memory per
//! process, queue depths and the database's size, and writes a JSON result and an SVG plot of
//! throughput and latency over time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt;
use futures_util::stream;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::api::Api;
use crate::bench_support::{
    cpu_seconds, machine, machine_busy_seconds, percentile, round_to, unix_nanos,
};
use crate::stack::{PreferredPorts, Stack, StackOptions};

const EVENT_TYPE: &str = "bench.load";

/// How events reach Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `POST /v1/events`, one event per request (or `--batch` per `POST /v1/events/batch`).
    Http,
    /// Published to `herald.events` as JSON, one event per message, with confirms.
    Broker,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Events per second; 0: as fast as the generator can.
    pub rate: u32,
    pub seconds: u32,
    /// Seconds of load before the measured window (connections, caches and plans warm up).
    pub warmup: u32,
    /// Webhook actions each event matches, each its own destination.
    pub fanout: usize,
    pub via: Via,
    pub replicas: BTreeMap<&'static str, usize>,
    /// Requests in flight at once (HTTP) or unconfirmed messages (broker).
    pub concurrency: usize,
    /// Events per HTTP request: 1 uses `POST /v1/events`, more `POST /v1/events/batch`.
    pub batch: usize,
    /// Faults injected during the load.
    pub faults: Vec<crate::bench_faults::Fault>,
}

/// What the receiver saw, per second since the load started.
struct Receiver {
    /// When the load started (deliveries are bucketed by second since then).
    started_unix_ns: AtomicU64,
    deliveries: AtomicU64,
    duplicates: AtomicU64,
    seen: Mutex<HashSet<String>>,
    /// (second, latency in microseconds) of every delivery.
    latencies: Mutex<Vec<(u32, u64)>>,
}

impl Receiver {
    fn record(&self, headers: &HeaderMap, body: &[u8]) {
        let arrived = unix_nanos();
        let webhook_id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(webhook_id)
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let sent = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["data"]["sent_unix_ns"].as_u64())
            .unwrap_or(arrived);
        let started = self.started_unix_ns.load(Ordering::Relaxed);
        let second = (arrived.saturating_sub(started) / 1_000_000_000) as u32;
        self.latencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((second, arrived.saturating_sub(sent) / 1000));
        self.deliveries.fetch_add(1, Ordering::Release);
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    receiver.record(&headers, &body);
    StatusCode::OK
}

/// One listener per destination on 127.0.0.1, served by a runtime of their own on their own
/// threads: sharing the load generator's runtime, the receiver was starved while thousands of
/// requests went out, and measured the generator instead of Herald. Returns their URLs.
fn start_receivers(receiver: &Arc<Receiver>, count: usize) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("receiver")
        .enable_all()
        .build()?;
    let mut urls = Vec::with_capacity(count);
    for _ in 0..count {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        runtime.spawn(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, router).await;
            }
        });
        urls.push(format!("http://127.0.0.1:{port}/hook"));
    }
    // The runtime lives as long as the benchmark process.
    std::mem::forget(runtime);
    Ok(urls)
}

fn event_body(n: u64) -> Value {
    json!({"type": EVENT_TYPE, "source": "bench", "data": {"n": n, "sent_unix_ns": unix_nanos()}})
}

/// Sends events at the target rate (or as fast as `concurrency` requests in flight allow) for
/// the given time, counting those answered 2xx.
async fn generate_http(
    api: Arc<Api>,
    key: Arc<str>,
    options: &LoadOptions,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let started = tokio::time::Instant::now();
    let seconds = u64::from(options.warmup + options.seconds);
    let total = u64::from(options.rate) * seconds;
    let deadline = started + Duration::from_secs(seconds);
    // One event per `POST /v1/events`, or `batch` per `POST /v1/events/batch`.
    let per_request = options.batch.max(1) as u64;
    let mut n = 0u64;
    while tokio::time::Instant::now() < deadline && (options.rate == 0 || n < total) {
        if options.rate > 0 {
            let due = started + Duration::from_secs_f64(n as f64 / f64::from(options.rate));
            tokio::time::sleep_until(due).await;
        }
        let permit = permits.clone().acquire_owned().await?;
        let (api, key, accepted) = (api.clone(), key.clone(), accepted.clone());
        let (path, body) = if per_request == 1 {
            ("/v1/events", event_body(n))
        } else {
            let events = (n..n + per_request).map(event_body).collect();
            ("/v1/events/batch", Value::Array(events))
        };
        tokio::spawn(async move {
            if api.call("POST", path, &key, body).await.is_ok() {
                accepted.fetch_add(per_request, Ordering::Release);
            }
            drop(permit);
        });
        n += per_request;
    }
    let _ = permits
        .acquire_many(options.concurrency as u32)
        .await
        .context("waiting for the last requests")?;
    Ok(())
}

async fn generate_broker(
    amqp_url: &str,
    tenant_id: &str,
    options: &LoadOptions,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    let seconds = u64::from(options.warmup + options.seconds);
    let mut plan = Publishing {
        started,
        deadline: started + Duration::from_secs(seconds),
        total: u64::from(options.rate) * seconds,
        next: 0,
        resend: Vec::new(),
    };
    // A broker fault (see `bench_faults`) breaks the connection: connect again and go on, as a
    // publisher that wants every event delivered does.
    loop {
        match publish(amqp_url, tenant_id, options, &accepted, &mut plan).await {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() < plan.deadline + Duration::from_secs(60) => {
                eprintln!("load generator: {error:#}; connecting again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Where the broker load generator is.
struct Publishing {
    started: tokio::time::Instant,
    deadline: tokio::time::Instant,
    total: u64,
    /// The next event number.
    next: u64,
    /// Events published but not confirmed when a connection broke: sent again first, with the
    /// same id (Herald keeps one).
    resend: Vec<u64>,
}

async fn publish(
    amqp_url: &str,
    tenant_id: &str,
    options: &LoadOptions,
    accepted: &AtomicU64,
    plan: &mut Publishing,
) -> anyhow::Result<()> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending = std::collections::VecDeque::new();
    let result: anyhow::Result<()> = async {
        let mut resend = std::mem::take(&mut plan.resend).into_iter();
        loop {
            let n = match resend.next() {
                Some(n) => n,
                None if tokio::time::Instant::now() < plan.deadline
                    && (options.rate == 0 || plan.next < plan.total) =>
                {
                    if options.rate > 0 {
                        let due = plan.started
                            + Duration::from_secs_f64(plan.next as f64 / f64::from(options.rate));
                        tokio::time::sleep_until(due).await;
                    }
                    plan.next += 1;
                    plan.next - 1
                }
                None => break,
            };
            let mut body = event_body(n);
            body["tenant_id"] = json!(tenant_id);
            body["id"] = json!(format!("load-{n}"));
            let properties = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id(format!("load-{n}").into())
                .with_delivery_mode(2);
            pending.push_back((n, None));
            let confirm = channel
                .basic_publish(
                    "herald.events".into(),
                    EVENT_TYPE.into(),
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    properties,
                )
                .await?;
            if let Some(last) = pending.back_mut() {
                last.1 = Some(confirm);
            }
            while pending.len() >= options.concurrency {
                settle_oldest(&mut pending, accepted).await?;
            }
        }
        while !pending.is_empty() {
            settle_oldest(&mut pending, accepted).await?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        plan.resend.extend(pending.iter().map(|(n, _)| *n));
    }
    let _ = connection.close(200, "done".into()).await;
    result
}

/// Waits for the oldest unconfirmed publish; it leaves the queue only once confirmed.
async fn settle_oldest(
    pending: &mut std::collections::VecDeque<(u64, Option<lapin::PublisherConfirm>)>,
    accepted: &AtomicU64,
) -> anyhow::Result<()> {
    if let Some((_, confirm)) = pending.front_mut() {
        if let Some(confirm) = confirm.take() {
            let confirmation = confirm.await?;
            if !confirmation.is_ack() {
                anyhow::bail!("the broker refused a publish");
            }
        }
        pending.pop_front();
        accepted.fetch_add(1, Ordering::Release);
    }
    Ok(())
}

/// One sample per second of everything outside the receiver.
#[derive(Debug, Clone, Default)]
struct Sample {
    accepted: u64,
    delivered: u64,
    cpu: BTreeMap<String, f64>,
    rss_mib: BTreeMap<String, f64>,
    queue_depth: u64,
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The processes to watch: each service replica, the broker and the database (all of its
/// processes' CPU would need a tree walk; its postmaster's children are summed by name).
fn processes(stack: &Stack, base: &Path) -> Vec<(String, Vec<u32>)> {
    let mut named: Vec<(String, Vec<u32>)> = Vec::new();
    // Named by service and replica number, so that a replica started in place of a killed one
    // (see `bench_faults`) keeps the name.
    let mut replicas: BTreeMap<&str, usize> = BTreeMap::new();
    for service in &stack.services {
        let n = replicas.entry(service.binary).or_default();
        *n += 1;
        named.push((format!("{}#{n}", service.binary), vec![service.pid()]));
    }
    for (name, pattern) in [("rabbitmq", "beam.smp"), ("postgres", "postgres")] {
        let pids = pids_named(pattern, base);
        named.push((name.to_owned(), pids));
    }
    // The load generator and the receiver share this process: their cost is part of the
    // machine's budget, and shows how much of it Herald had.
    named.push(("generator+receiver".to_owned(), vec![std::process::id()]));
    named.push((MACHINE.to_owned(), Vec::new()));
    named
}

/// The row for the whole machine (every core) among the processes' CPU.
const MACHINE: &str = "machine (all cores, max 100 x cores)";

/// Percent of a core each named group used since the last call (a process seen for the first
/// time counts from its start), updating `last` (CPU seconds by process id; the machine's
/// under id 0).
fn cpu_delta(
    watched: &[(String, Vec<u32>)],
    last: &mut HashMap<u32, f64>,
) -> BTreeMap<String, f64> {
    let mut percent = BTreeMap::new();
    for (name, pids) in watched {
        let readings: Vec<(u32, f64)> = if name == MACHINE {
            vec![(0, machine_busy_seconds().unwrap_or(0.0))]
        } else {
            pids.iter()
                .filter_map(|p| Some((*p, cpu_seconds(*p).ok()?)))
                .collect()
        };
        let used: f64 = readings
            .into_iter()
            .map(|(pid, now)| now - last.insert(pid, now).unwrap_or(0.0))
            .sum();
        percent.insert(name.clone(), round_to(used * 100.0, 1));
    }
    percent
}

/// Processes whose command line names `pattern` and this benchmark's data folder `base`, with
/// their children (PostgreSQL's backends and writers are the postmaster's children).
fn pids_named(pattern: &str, base: &Path) -> Vec<u32> {
    let base = base.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect();
    let roots: Vec<u32> = all
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .map(|c| c.contains(pattern) && c.contains(&base))
                .unwrap_or(false)
        })
        .collect();
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut pids = roots.clone();
    pids.extend(
        all.into_iter()
            .filter(|pid| parent(*pid).is_some_and(|p| roots.contains(&p))),
    );
    pids
}

async fn queue_depth(http: &reqwest::Client, management: &str) -> u64 {
    let Ok(response) = http.get(format!("{management}/api/queues")).send().await else {
        return 0;
    };
    let queues: Value = response.json().await.unwrap_or_default();
    queues
        .as_array()
        .map(|qs| qs.iter().filter_map(|q| q["messages"].as_u64()).sum())
        .unwrap_or(0)
}

/// Draws throughput (events accepted and deliveries per second) and p99 latency over time.
fn plot(samples: &[Sample], p99_ms: &[f64], title: &str) -> String {
    let (width, height, pad) = (900.0, 520.0, 60.0);
    let panel = (height - 3.0 * pad) / 2.0;
    let seconds = samples.len().max(2) as f64;
    let x = |i: usize| pad + (width - 2.0 * pad) * i as f64 / (seconds - 1.0);
    let rates: Vec<(f64, f64)> = samples
        .windows(2)
        .map(|w| {
            (
                w[1].accepted.saturating_sub(w[0].accepted) as f64,
                w[1].delivered.saturating_sub(w[0].delivered) as f64,
            )
        })
        .collect();
    let max_rate = rates.iter().map(|(a, d)| a.max(*d)).fold(1.0, f64::max);
    let max_latency = p99_ms.iter().copied().fold(1.0, f64::max);
    let line = |values: Vec<f64>, top: f64, max: f64, colour: &str| {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i + 1), top + panel - panel * v / max))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        )
    };
    let top1 = pad;
    let top2 = 2.0 * pad + panel;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="24" font-size="14">{title}</text>
<rect x="{pad}" y="{top1}" width="{w}" height="{panel}" fill="none" stroke="#999"/>
<text x="{pad}" y="{t1}">events accepted/s (blue) and deliveries/s (green); max {max_rate:.0}/s</text>
{accepted}
{delivered}
<rect x="{pad}" y="{top2}" width="{w}" height="{panel}" fill="none" stroke="#999"/>
<text x="{pad}" y="{t2}">end-to-end p99 latency per second (red); max {max_latency:.1} ms</text>
{latency}
<text x="{pad}" y="{bottom}">0 s</text>
<text x="{right}" y="{bottom}" text-anchor="end">{secs} s</text>
</svg>
"##,
        w = width - 2.0 * pad,
        t1 = top1 - 6.0,
        t2 = top2 - 6.0,
        accepted = line(
            rates.iter().map(|r| r.0).collect(),
            top1,
            max_rate,
            "#1f77b4"
        ),
        delivered = line(
            rates.iter().map(|r| r.1).collect(),
            top1,
            max_rate,
            "#2ca02c"
        ),
        latency = line(p99_ms.to_vec(), top2, max_latency, "#d62728"),
        bottom = height - pad / 2.0,
        right = width - pad,
        secs = samples.len(),
    )
}

pub fn run(root: &Path, options: LoadOptions) -> anyhow::Result<ExitCode> {
    if options.seconds == 0 || options.fanout == 0 || options.concurrency == 0 {
        bail!("--seconds, --fanout and --concurrency must be positive");
    }
    crate::up::build(root, true)?;
    let base = root.join("target/bench/load");
    let (stack, stack_options) = start_stack(root, &base, &options.replicas)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(measure(&stack, &stack_options, &options, "load"));
    drop(runtime);
    locked(&stack).stop();
    let report = result?;
    write_report(&base, &options, report)
}

/// A stack of its own under `base` (emptied first) as the load benchmarks run it: the four
/// services in release builds (`replicas` of each), the broker and a database with fsync on,
/// loopback destinations allowed and no per-tenant request limit.
pub fn start_stack(
    root: &Path,
    base: &Path,
    replicas: &BTreeMap<&'static str, usize>,
) -> anyhow::Result<(Arc<Mutex<Stack>>, StackOptions)> {
    if base.join("rabbitmq").exists() || base.join("postgres").exists() {
        std::fs::remove_dir_all(base).with_context(|| format!("removing {}", base.display()))?;
    }
    let stack_options = StackOptions {
        base: base.to_path_buf(),
        bin_dir: root.join("target/release"),
        ports: PreferredPorts {
            amqp: 5684,
            management: 15684,
            postgres: 5444,
            api: 8182,
            ops: 9300,
        },
        fast_database: false,
        replicas: replicas.clone(),
        env: vec![
            ("HERALD_TELEMETRY__LOG_LEVEL".into(), "warn".into()),
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS".into(),
                "127.0.0.1/32".into(),
            ),
            // The load is one tenant's: the per-tenant request limit is not what is measured.
            ("HERALD_INGEST__TENANT_RATE_PER_S".into(), "0".into()),
        ],
    };
    let stack = Arc::new(Mutex::new(Stack::start(stack_options.clone())?));
    Ok((stack, stack_options))
}

/// `run`'s second half, after the stack has stopped.
fn write_report(base: &Path, options: &LoadOptions, report: Report) -> anyhow::Result<ExitCode> {
    let name = format!(
        "{}-{}-fanout{}",
        match options.via {
            Via::Http if options.batch > 1 => format!("http-batch{}", options.batch),
            Via::Http => "http".to_owned(),
            Via::Broker => "broker".to_owned(),
        },
        if options.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}ps", options.rate)
        },
        options.fanout
    );
    std::fs::create_dir_all(base)?;
    let json_path = base.join(format!("{name}.json"));
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report.json)? + "\n",
    )?;
    let svg_path = base.join(format!("{name}.svg"));
    std::fs::write(&svg_path, &report.svg)?;
    println!("{}", report.summary);
    eprintln!(
        "results: {} and {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub struct Report {
    pub json: Value,
    svg: String,
    pub summary: String,
}

pub fn locked(stack: &Mutex<Stack>) -> std::sync::MutexGuard<'_, Stack> {
    stack.lock().unwrap_or_else(|e| e.into_inner())
}

/// One load on a running stack, for a tenant of its own named `tenant`.
pub async fn measure(
    stack: &Arc<Mutex<Stack>>,
    stack_options: &StackOptions,
    options: &LoadOptions,
    tenant: &str,
) -> anyhow::Result<Report> {
    let (api_url, admin_token, amqp_url, management_url) = {
        let stack = locked(stack);
        (
            stack.api_url.clone(),
            stack.admin_token.clone(),
            stack.amqp_url.clone(),
            stack.management_url.clone(),
        )
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let api = Arc::new(Api {
        http: http.clone(),
        base: api_url,
    });
    let (tenant_id, key) = api.tenant_with_key(&admin_token, tenant).await?;
    let receiver = Arc::new(Receiver {
        started_unix_ns: AtomicU64::new(0),
        deliveries: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        seen: Mutex::new(HashSet::new()),
        latencies: Mutex::new(Vec::new()),
    });
    let urls = start_receivers(&receiver, options.fanout)?;
    let creations = urls.iter().enumerate().map(|(i, url)| {
        api.call(
            "POST",
            "/v1/actions",
            &key,
            json!({"name": format!("hook-{i}"), "event_types": [EVENT_TYPE],
                   "handler": {"type": "webhook", "url": url},
                   "retry": {"max_attempts": 5, "delays_s": [1, 2, 5]}}),
        )
    });
    for created in stream::iter(creations)
        .buffered(8)
        .collect::<Vec<_>>()
        .await
    {
        created?;
    }
    // The matchers hear of new actions within moments.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let accepted = Arc::new(AtomicU64::new(0));
    let management = management_url
        .as_deref()
        .and_then(|m| m.split_whitespace().next())
        .map(|m| m.replace("http://", "http://guest:guest@"))
        .unwrap_or_default();
    let watched = processes(&locked(stack), &stack_options.base);
    // CPU seconds per process id at the last sample: the database opens backends as the pools
    // grow, so the processes are listed afresh every second.
    let mut last_cpu: HashMap<u32, f64> = HashMap::new();
    cpu_delta(&watched, &mut last_cpu);
    let started = Instant::now();
    // Faults run on a thread of their own: a broker or database restart takes seconds.
    let faults = (!options.faults.is_empty()).then(|| {
        let (stack, stack_options, faults) =
            (stack.clone(), stack_options.clone(), options.faults.clone());
        std::thread::spawn(move || {
            crate::bench_faults::inject_all(&stack, &stack_options, &faults, started)
        })
    });
    receiver
        .started_unix_ns
        .store(unix_nanos(), Ordering::Relaxed);
    let generator = {
        let (api, key, accepted, options) = (
            api.clone(),
            Arc::<str>::from(key.as_str()),
            accepted.clone(),
            options.clone(),
        );
        let (amqp, tenant) = (amqp_url.clone(), tenant_id.clone());
        tokio::spawn(async move {
            match options.via {
                Via::Http => generate_http(api, key, &options, accepted).await,
                Via::Broker => generate_broker(&amqp, &tenant, &options, accepted).await,
            }
        })
    };
    let mut samples = vec![Sample::default()];
    let drain_limit = Duration::from_secs(u64::from(options.warmup + options.seconds) + 120);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut sample = Sample {
            accepted: accepted.load(Ordering::Acquire),
            delivered: receiver.deliveries.load(Ordering::Acquire),
            queue_depth: queue_depth(&http, &management).await,
            ..Sample::default()
        };
        let now_watched = processes(&locked(stack), &stack_options.base);
        sample.cpu = cpu_delta(&now_watched, &mut last_cpu);
        for (name, pids) in &now_watched {
            sample.rss_mib.insert(
                name.clone(),
                round_to(pids.iter().map(|p| rss_mib(*p)).sum(), 1),
            );
        }
        let generating = !generator.is_finished();
        let expected = sample.accepted * options.fanout as u64;
        samples.push(sample.clone());
        if !generating && sample.delivered >= expected {
            break;
        }
        if started.elapsed() > drain_limit {
            eprintln!(
                "    stopped waiting: {} of {expected} deliveries",
                sample.delivered
            );
            break;
        }
    }
    generator.await??;
    let elapsed_load = Duration::from_secs(u64::from(options.seconds));
    let (from, to) = (
        options.warmup as usize,
        (options.warmup + options.seconds) as usize,
    );
    let at = |second: usize| {
        samples
            .get(second)
            .or(samples.last())
            .cloned()
            .unwrap_or_default()
    };
    let accepted_total = accepted.load(Ordering::Acquire);
    let delivered_total = receiver.deliveries.load(Ordering::Acquire);
    let mut all: Vec<u64> = Vec::new();
    let mut by_second: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (second, latency) in receiver
        .latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        // Only what was sent in the measured window: (second of arrival, a delivery of an
        // event sent in the warm-up arrives within it or just after).
        if (*second as usize) >= from {
            all.push(*latency);
        }
        by_second.entry(*second).or_default().push(*latency);
    }
    all.sort_unstable();
    let p = |f: f64| round_to(percentile(&all, f) as f64 / 1000.0, 2);
    let p99_per_second: Vec<f64> = (0..samples.len() as u32)
        .map(|s| {
            let mut values = by_second.get(&s).cloned().unwrap_or_default();
            values.sort_unstable();
            percentile(&values, 0.99) as f64 / 1000.0
        })
        .collect();
    // Per second over the measured window: what came in, and what the pipeline kept up with.
    let accepted_in_window = at(to).accepted.saturating_sub(at(from).accepted);
    let delivered_in_window = at(to).delivered.saturating_sub(at(from).delivered);
    let cpu_avg: BTreeMap<String, f64> = watched
        .iter()
        .map(|(name, _)| {
            let busy: Vec<f64> = samples
                .iter()
                .skip(from + 1)
                .take(options.seconds as usize)
                .filter_map(|s| s.cpu.get(name).copied())
                .collect();
            let avg = busy.iter().sum::<f64>() / busy.len().max(1) as f64;
            (name.clone(), round_to(avg, 1))
        })
        .collect();
    let rss_max: BTreeMap<String, f64> = watched
        .iter()
        .map(|(name, _)| {
            let max = samples
                .iter()
                .filter_map(|s| s.rss_mib.get(name).copied())
                .fold(0.0, f64::max);
            (name.clone(), max)
        })
        .collect();
    let database_mib = database_size_mib(&locked(stack)).unwrap_or(0.0);
    let faults: Vec<Value> = faults
        .map(|thread| thread.join().unwrap_or_default())
        .unwrap_or_default();
    let (cpus, model) = machine();
    let json = json!({
        "machine": {"cpus": cpus, "model": model},
        "options": {"rate": options.rate, "seconds": options.seconds, "warmup": options.warmup,
                    "fanout": options.fanout,
                    "via": format!("{:?}", options.via).to_lowercase(),
                    "replicas": options.replicas, "concurrency": options.concurrency,
                    "batch": options.batch},
        "accepted": accepted_total,
        "accepted_per_s": round_to(accepted_in_window as f64 / elapsed_load.as_secs_f64(), 0),
        "delivered": delivered_total,
        "deliveries_per_s_in_window": round_to(delivered_in_window as f64 / elapsed_load.as_secs_f64(), 0),
        "lost": (accepted_total * options.fanout as u64).saturating_sub(delivered_total),
        "duplicates": receiver.duplicates.load(Ordering::Acquire),
        "faults": faults,
        "latency_ms": {"p50": p(0.50), "p99": p(0.99), "p999": p(0.999), "max": p(1.0)},
        "cpu_percent_avg": cpu_avg,
        "rss_mib_max": rss_max,
        "queue_depth_max": samples.iter().map(|s| s.queue_depth).max().unwrap_or(0),
        "database_mib": round_to(database_mib, 1),
        "drained_after_s": samples.len() - 1,
        "per_second": samples.iter().map(|s| json!({"accepted": s.accepted,
            "delivered": s.delivered, "queue_depth": s.queue_depth, "cpu": s.cpu})).collect::<Vec<_>>(),
    });
    let summary = format!(
        "{via:?}, target {rate}, {secs} s, fan-out {fanout}: accepted {acc}/s, delivered \
         {dps}/s in the window, latency p50 {p50} ms / p99 {p99} ms / p99.9 {p999} ms, lost {lost}, \
         duplicates {dup}, all delivered {drained} s after the start, max queue depth {qd}, database \
         {db:.0} MiB\nCPU % (average over the load): {cpu}\nRSS MiB (max): {rss}",
        via = options.via,
        rate = if options.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}/s", options.rate)
        },
        secs = options.seconds,
        fanout = options.fanout,
        acc = json["accepted_per_s"],
        dps = json["deliveries_per_s_in_window"],
        p50 = json["latency_ms"]["p50"],
        p99 = json["latency_ms"]["p99"],
        p999 = json["latency_ms"]["p999"],
        lost = json["lost"],
        dup = json["duplicates"],
        drained = json["drained_after_s"],
        qd = json["queue_depth_max"],
        db = database_mib,
        cpu = listed(&cpu_avg),
        rss = listed(&rss_max),
    );
    let title = format!(
        "Herald end to end: {:?}, target {}, fan-out {}",
        options.via,
        if options.rate == 0 {
            "max".to_owned()
        } else {
            format!("{}/s", options.rate)
        },
        options.fanout
    );
    let svg = plot(&samples, &p99_per_second, &title);
    Ok(Report { json, svg, summary })
}

/// `name value, name value` for the summary line.
fn listed(values: &BTreeMap<String, f64>) -> String {
    values
        .iter()
        .map(|(name, value)| format!("{name} {value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn database_size_mib(stack: &Stack) -> anyhow::Result<f64> {
    let postgres = stack
        .postgres
        .as_ref()
        .context("the benchmark runs on its own local database")?;
    let bytes: f64 = postgres
        .psql("herald", "SELECT pg_database_size(current_database())")?
        .trim()
        .parse()?;
    Ok(bytes / (1024.0 * 1024.0))
}
