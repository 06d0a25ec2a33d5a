//! `cargo xtask bench executor`: how many webhooks one `herald-executor` process delivers per
//! second, every attempt recorded in PostgreSQL, and how much latency it adds.
//!
//! Method. A stack of its own (ingest to create tenants and actions over the API, a scheduler
//! so that attempts the executor holds back come round again, no matcher, a database with fsync
//! on) and, inside this process, a receiver: one HTTP listener per destination on 127.0.0.1,
//! each answering 200 with an empty body at once. Each round (1 destination, then 100) has a
//! fresh tenant, one webhook action per destination, and two scenarios:
//!
//! - `throughput`: N execution rows are inserted straight into PostgreSQL (as the matcher would
//!   have recorded them, spread round-robin over the actions) and their N jobs published to
//!   `herald.jobs` with routing key `first`, 50 jobs per message, while no executor runs. Then
//!   one executor starts and drains the backlog. Deliveries per second are N over the span from
//!   the first request the receiver saw to the last one (monotonic clock of this process, so the
//!   executor's start-up is left out). The executor's CPU time (user + system, from /proc, over
//!   its whole life so far) is divided by the deliveries; "recorded after" is the time from
//!   starting the executor until `attempts` holds N rows for the tenant.
//! - `latency`: with that executor still running, jobs are published one per message at a
//!   paced rate for 10 s. Each job's event data carries `sent_unix_ns`, the wall clock read
//!   right before its message is published; the receiver subtracts it from the wall clock when
//!   the webhook arrives (same machine, same clock). That is the latency Herald adds from the
//!   broker to the destination, including the check in PostgreSQL.
//!
//! Rounds run for each handler type asked for (`--handlers`, see `bench_handlers`): the
//! signed webhook, an `http` request with a five-template JSON body, an email to a mail sink.
//!
//! A round starts with the previous round's executor stopped, so each throughput run drains a
//! backlog. The executor runs with its default settings; attempts it holds back (for example
//! a destination too slow to take them within `per_destination_wait_ms`) go through the
//! scheduler and are counted from its `/metrics`, as are redelivered job messages. Results go
//! to stdout as a table and to `target/bench/executor/results.json`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::Utc;
use futures_util::{StreamExt, stream};
use herald_common::broker::Outgoing;
use herald_common::broker::topology::JOBS_EXCHANGE;
use herald_common::config::DatabaseConfig;
use herald_common::event::{Event, EventId, EventType, Metadata, RawJson};
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::messages::{ExecutionJob, JobBatch, Lane};
use herald_common::store::{NewExecution, Store};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::bench_handlers::{BenchHandler, fsync_floor_us, http_render_us, read_mail};
use crate::bench_support::{cpu_seconds, machine, percentile, round_to, unix_nanos, wait_until};
use crate::stack::{PreferredPorts, Stack, StackOptions};

/// The event type every bench action listens to.
const EVENT_TYPE: &str = "bench.delivery";
/// Jobs per broker message in the throughput backlog.
const JOBS_PER_MESSAGE: usize = 50;
/// How long the latency scenario publishes.
const PACED_DURATION: Duration = Duration::from_secs(10);
/// How long a throughput backlog may take to drain before the run is declared failed.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);
/// How long the paced jobs may take to arrive and be recorded after the last one is published.
const PACED_SETTLE_LIMIT: Duration = Duration::from_secs(120);
/// Execution rows inserted per statement.
const ROWS_PER_INSERT: usize = 5000;
/// Broker confirms awaited at most at once.
const CONFIRMS_IN_FLIGHT: usize = 1000;
/// `max_attempts` of every action and execution row.
const MAX_ATTEMPTS: u32 = 3;
/// `priority` of every execution row (the default of actions).
const PRIORITY: i32 = 100;
const EXECUTOR: &str = "herald-executor";

/// What `cargo xtask bench executor` was asked to do.
pub struct ExecutorBenchOptions {
    /// Jobs in each throughput backlog.
    pub deliveries: usize,
    /// Jobs per second in the latency scenario.
    pub paced_rate: u32,
    /// The destination counts to run, one round each per handler type.
    pub destination_counts: Vec<usize>,
    /// The handler types to run.
    pub handlers: Vec<BenchHandler>,
}

/// What the receiver has seen, shared by all its listeners: atomics and one vector.
struct Receiver {
    /// The receiver's monotonic clock: request times are nanoseconds since this instant.
    origin: Instant,
    /// Jobs numbered from here on belong to the latency scenario.
    paced_from: AtomicU64,
    throughput_requests: AtomicU64,
    paced_requests: AtomicU64,
    /// Requests whose body had no readable `data.n` and `data.sent_unix_ns`.
    unreadable: AtomicU64,
    /// Requests of a workflow's first step (they say `"step": "first"`).
    first_steps: AtomicU64,
    /// First and last throughput request, in nanoseconds since `origin` (`u64::MAX` / 0: none).
    first_throughput_ns: AtomicU64,
    last_throughput_ns: AtomicU64,
    /// Publish-to-arrival latency of each paced request, in microseconds.
    paced_latencies_us: Mutex<Vec<u64>>,
}

impl Receiver {
    /// A receiver that has seen nothing; every job counts as throughput until `paced_from`
    /// is set.
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            paced_from: AtomicU64::new(u64::MAX),
            throughput_requests: AtomicU64::new(0),
            paced_requests: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            first_steps: AtomicU64::new(0),
            first_throughput_ns: AtomicU64::new(u64::MAX),
            last_throughput_ns: AtomicU64::new(0),
            paced_latencies_us: Mutex::new(Vec::new()),
        }
    }

    /// Counts one request; its body has `data` (the webhook's envelope, the `http` body).
    fn record(&self, body: &[u8]) {
        let arrived_unix_ns = unix_nanos();
        let arrived_ns = self.origin.elapsed().as_nanos() as u64;
        let body: Option<Value> = serde_json::from_slice(body).ok();
        if body.as_ref().is_some_and(|b| b["step"] == "first") {
            self.first_steps.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let parsed: Option<(u64, u64)> = body.and_then(|webhook| {
            let data = webhook.get("data")?;
            Some((
                data.get("n")?.as_u64()?,
                data.get("sent_unix_ns")?.as_u64()?,
            ))
        });
        self.record_job(parsed, arrived_ns, arrived_unix_ns);
    }

    /// Counts job `n` sent at `sent_unix_ns` (`None`: a request that did not say).
    fn record_job(&self, parsed: Option<(u64, u64)>, arrived_ns: u64, arrived_unix_ns: u64) {
        let Some((n, sent_unix_ns)) = parsed else {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if n >= self.paced_from.load(Ordering::Acquire) {
            let latency_us = arrived_unix_ns.saturating_sub(sent_unix_ns) / 1000;
            self.paced_latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(latency_us);
            self.paced_requests.fetch_add(1, Ordering::Release);
        } else {
            self.first_throughput_ns
                .fetch_min(arrived_ns, Ordering::Relaxed);
            self.last_throughput_ns
                .fetch_max(arrived_ns, Ordering::Relaxed);
            self.throughput_requests.fetch_add(1, Ordering::Release);
        }
    }

    /// The span from the first throughput request to the last one.
    fn throughput_span(&self) -> Option<(Duration, Duration)> {
        let first = self.first_throughput_ns.load(Ordering::Acquire);
        let last = self.last_throughput_ns.load(Ordering::Acquire);
        (first != u64::MAX).then(|| (Duration::from_nanos(first), Duration::from_nanos(last)))
    }
}

/// Answers every webhook with 200 and an empty body, after counting it.
async fn receive_webhook(State(receiver): State<Arc<Receiver>>, body: Bytes) -> StatusCode {
    receiver.record(&body);
    StatusCode::OK
}

/// The receiver's listeners, one per destination; aborted when dropped.
struct Destinations {
    /// A URL each, or for email a mail sink's port.
    urls: Vec<String>,
    servers: Vec<JoinHandle<()>>,
    /// Connections the mail sinks accepted.
    smtp_connections: Vec<Arc<AtomicU64>>,
}

impl Destinations {
    fn smtp_connections(&self) -> u64 {
        self.smtp_connections
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl Drop for Destinations {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// Starts `count` mail sinks on 127.0.0.1, each a destination of its own, whose messages go
/// to the receiver.
async fn start_mail_sinks(receiver: &Arc<Receiver>, count: usize) -> anyhow::Result<Destinations> {
    let (mail_tx, mut mail) = tokio::sync::mpsc::unbounded_channel::<crate::smtp_sink::Mail>();
    let counted = receiver.clone();
    let reader = tokio::spawn(async move {
        while let Some(message) = mail.recv().await {
            let arrived_unix_ns = unix_nanos();
            let arrived_ns = counted.origin.elapsed().as_nanos() as u64;
            counted.record_job(read_mail(&message.data), arrived_ns, arrived_unix_ns);
        }
    });
    let mut destinations = Destinations {
        urls: Vec::with_capacity(count),
        servers: vec![reader],
        smtp_connections: Vec::with_capacity(count),
    };
    for _ in 0..count {
        let sink = crate::smtp_sink::SmtpSink::start(0, mail_tx.clone()).await?;
        destinations.urls.push(sink.port.to_string());
        destinations.smtp_connections.push(sink.connections);
    }
    Ok(destinations)
}

/// Starts `count` listeners on 127.0.0.1, each a destination of its own (its own port).
async fn start_destinations(
    receiver: &Arc<Receiver>,
    count: usize,
    handler: BenchHandler,
) -> anyhow::Result<Destinations> {
    if handler == BenchHandler::Email {
        return start_mail_sinks(receiver, count).await;
    }
    let mut destinations = Destinations {
        urls: Vec::with_capacity(count),
        servers: Vec::with_capacity(count),
        smtp_connections: Vec::new(),
    };
    for _ in 0..count {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a receiver listener on 127.0.0.1")?;
        let port = listener.local_addr()?.port();
        let router = Router::new()
            .route("/hook", post(receive_webhook))
            .with_state(receiver.clone());
        destinations.servers.push(tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("receiver on port {port} stopped: {error}");
            }
        }));
        destinations
            .urls
            .push(format!("http://127.0.0.1:{port}/hook"));
    }
    Ok(destinations)
}

/// Creates a tenant and one action of `handler`'s type per destination: (tenant, action ids in
/// the order of `urls`).
async fn create_tenant_and_actions(
    api: &Api,
    admin_token: &str,
    tenant_name: &str,
    urls: &[String],
    handler: BenchHandler,
) -> anyhow::Result<(TenantId, Vec<ActionId>)> {
    let (tenant_id, key) = api.tenant_with_key(admin_token, tenant_name).await?;
    let tenant_id: TenantId = tenant_id
        .parse()
        .with_context(|| format!("tenant id {tenant_id:?} from the API"))?;
    let creations = urls.iter().enumerate().map(|(i, url)| {
        let body = json!({
            "name": format!("dest-{i}"),
            "event_types": [EVENT_TYPE],
            "handler": handler.handler(url),
            "retry": {"max_attempts": MAX_ATTEMPTS, "delays_s": [1]},
        });
        api.call("POST", "/v1/actions", &key, body)
    });
    let created: Vec<anyhow::Result<Value>> = stream::iter(creations).buffered(16).collect().await;
    let mut action_ids = Vec::with_capacity(urls.len());
    for action in created {
        let action = action.context("creating an action")?;
        let id = action["id"]
            .as_str()
            .with_context(|| format!("no action id in {action}"))?;
        action_ids.push(
            id.parse::<ActionId>()
                .with_context(|| format!("action id {id:?} from the API"))?,
        );
    }
    Ok((tenant_id, action_ids))
}

/// The event data of job `n`: when it was sent and its number.
fn event_data(sent_unix_ns: u64, n: u64) -> RawJson {
    RawJson::from_validated(format!(r#"{{"sent_unix_ns":{sent_unix_ns},"n":{n}}}"#))
}

/// Jobs numbered `numbers`, spread round-robin over `actions`, each with an execution id of
/// its own and an event `bench-<n>` whose data carries the current time.
fn prepare_jobs(
    tenant_id: TenantId,
    actions: &[ActionId],
    numbers: std::ops::Range<u64>,
) -> anyhow::Result<Vec<ExecutionJob>> {
    let event_type = EventType::parse(EVENT_TYPE)?;
    let received_at = Utc::now();
    numbers
        .map(|n| {
            let action_id = actions[(n % actions.len() as u64) as usize];
            Ok(ExecutionJob {
                step: None,
                execution_id: ExecutionId::new(),
                tenant_id,
                action_id,
                attempt: 1,
                event: Event {
                    tenant_id,
                    id: EventId::parse(&format!("bench-{n}"))?,
                    event_type: event_type.clone(),
                    source: None,
                    time: None,
                    received_at,
                    data: event_data(unix_nanos(), n),
                    metadata: Metadata::new(),
                    trace: None,
                },
            })
        })
        .collect()
}

/// Records the jobs' executions as `pending` with no attempt yet, as the matcher would have.
async fn insert_execution_rows(store: &Store, jobs: &[ExecutionJob]) -> anyhow::Result<()> {
    for chunk in jobs.chunks(ROWS_PER_INSERT) {
        let rows: Vec<NewExecution> = chunk
            .iter()
            .map(|job| NewExecution {
                id: job.execution_id,
                tenant_id: job.tenant_id,
                event_id: job.event.id.clone(),
                action_id: job.action_id,
                max_attempts: MAX_ATTEMPTS as i32,
                priority: PRIORITY,
            })
            .collect();
        let mut transaction = store.pool().begin().await?;
        let stored = Store::insert_executions(&mut transaction, &rows)
            .await
            .context("inserting execution rows")?;
        transaction.commit().await?;
        if stored.iter().any(|row| !row.inserted) {
            bail!("some execution rows existed already");
        }
    }
    Ok(())
}

/// A confirmed publisher on one channel: many confirms in flight, each checked to be an ack.
struct ConfirmedPublisher {
    connection: Connection,
    channel: Channel,
    pending: VecDeque<PublisherConfirm>,
}

impl ConfirmedPublisher {
    /// Opens a connection and a channel in confirm mode.
    async fn connect(amqp_url: &str) -> anyhow::Result<Self> {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .context("connecting to RabbitMQ")?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            channel,
            pending: VecDeque::new(),
        })
    }

    /// Publishes a job batch on the first-attempt lane exactly as the matcher does.
    async fn publish(&mut self, batch: &JobBatch) -> anyhow::Result<()> {
        let outgoing = Outgoing::message(JOBS_EXCHANGE, Lane::First.routing_key(), batch);
        let confirm = self
            .channel
            .basic_publish(
                outgoing.exchange.as_str().into(),
                outgoing.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &outgoing.body,
                outgoing.properties,
            )
            .await
            .context("publishing a job batch")?;
        self.pending.push_back(confirm);
        while self.pending.len() > CONFIRMS_IN_FLIGHT {
            if let Some(oldest) = self.pending.pop_front() {
                check_confirmation(oldest.await?)?;
            }
        }
        Ok(())
    }

    /// Waits for every outstanding confirm, then closes the connection.
    async fn finish(mut self) -> anyhow::Result<()> {
        while let Some(confirm) = self.pending.pop_front() {
            check_confirmation(confirm.await?)?;
        }
        self.connection.close(200, "done".into()).await?;
        Ok(())
    }
}

/// Fails unless the broker acknowledged the message and routed it to a queue.
fn check_confirmation(confirmation: Confirmation) -> anyhow::Result<()> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => bail!(
            "a job batch was not routed to any queue: {:?}",
            returned.reply_text
        ),
        other => bail!("the broker refused a job batch: {other:?}"),
    }
}

/// Publishes the whole backlog, `JOBS_PER_MESSAGE` jobs per message.
async fn publish_backlog(amqp_url: &str, jobs: &[ExecutionJob]) -> anyhow::Result<()> {
    let mut publisher = ConfirmedPublisher::connect(amqp_url).await?;
    for chunk in jobs.chunks(JOBS_PER_MESSAGE) {
        publisher
            .publish(&JobBatch {
                jobs: chunk.to_vec(),
            })
            .await?;
    }
    publisher.finish().await
}

/// Publishes one job per message at `rate` per second, stamping each job's `sent_unix_ns`
/// right before its message goes out. Returns how long the publishing took.
async fn publish_paced(
    amqp_url: &str,
    jobs: Vec<(u64, ExecutionJob)>,
    rate: u32,
) -> anyhow::Result<Duration> {
    let mut publisher = ConfirmedPublisher::connect(amqp_url).await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    for (i, (n, mut job)) in jobs.into_iter().enumerate() {
        tokio::time::sleep_until(started + interval.mul_f64(i as f64)).await;
        job.event.data = event_data(unix_nanos(), n);
        publisher.publish(&JobBatch { jobs: vec![job] }).await?;
    }
    let publishing = started.elapsed();
    publisher.finish().await?;
    Ok(publishing)
}

/// Counters of one executor process, read from its `/metrics`.
#[derive(Clone, Default)]
struct ExecutorCounters {
    /// Attempts held back (handed to the scheduler without being spent, to come back later),
    /// by reason, for example `destination_busy` when too many attempts already wait for
    /// their destination in this process.
    held_by_reason: BTreeMap<String, u64>,
    /// Deliveries the broker had handed out before (a job message nacked or left unacked).
    redelivered: u64,
}

impl ExecutorCounters {
    /// The counters as the executor on `ops_port` reports them now.
    fn read(ops_port: u16) -> anyhow::Result<Self> {
        let text = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?
            .get(format!("http://127.0.0.1:{ops_port}/metrics"))
            .send()
            .and_then(|response| response.error_for_status())
            .and_then(|response| response.text())
            .context("reading the executor's metrics")?;
        let mut counters = Self::default();
        for line in text.lines() {
            // `name{label="value"} number`
            let Some((series, number)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(number) = number.parse::<f64>() else {
                continue;
            };
            if let Some(labels) = series.strip_prefix("herald_attempts_held_total{") {
                let reason = labels
                    .split_once("reason=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map_or("unknown", |(reason, _)| reason);
                *counters
                    .held_by_reason
                    .entry(reason.to_owned())
                    .or_default() += number as u64;
            } else if series.starts_with("herald_redeliveries_total{") {
                counters.redelivered += number as u64;
            }
        }
        Ok(counters)
    }

    /// Attempts held back, whatever the reason.
    fn held(&self) -> u64 {
        self.held_by_reason.values().sum()
    }

    /// What happened since `earlier`, by reason.
    fn held_since(&self, earlier: &Self) -> BTreeMap<String, u64> {
        self.held_by_reason
            .iter()
            .map(|(reason, count)| {
                let before = earlier.held_by_reason.get(reason).copied().unwrap_or(0);
                (reason.clone(), count.saturating_sub(before))
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

/// A single number from psql.
fn count_rows(stack: &Stack, sql: &str) -> anyhow::Result<u64> {
    let postgres = stack
        .postgres
        .as_ref()
        .context("the benchmark runs on its own local database")?;
    let output = postgres.psql("herald", sql)?;
    output
        .trim()
        .parse()
        .with_context(|| format!("reading a count from {output:?} ({sql})"))
}

/// Executions whose attempts are recorded for the tenant (for a workflow: runs whose two
/// `http` steps' attempts are).
fn attempts_of(stack: &Stack, tenant_id: TenantId, handler: BenchHandler) -> anyhow::Result<u64> {
    let rows = count_rows(
        stack,
        &format!(
            "SELECT count(*) FROM {} WHERE tenant_id = '{}'",
            handler.attempts_table(),
            tenant_id.as_uuid()
        ),
    )?;
    Ok(rows / handler.attempts_per_execution())
}

/// The tenant's executions that ended `succeeded`.
fn succeeded_executions_of(stack: &Stack, tenant_id: TenantId) -> anyhow::Result<u64> {
    count_rows(
        stack,
        &format!(
            "SELECT count(*) FROM executions WHERE tenant_id = '{}' AND status = 'succeeded'",
            tenant_id.as_uuid()
        ),
    )
}

/// Everything one round shares.
struct Bench<'a> {
    root_options: &'a StackOptions,
    runtime: &'a tokio::runtime::Runtime,
    api: &'a Api,
    store: &'a Store,
    options: &'a ExecutorBenchOptions,
}

/// One round: both scenarios against `destination_count` destinations.
fn run_round(
    bench: &Bench<'_>,
    stack: &mut Stack,
    handler: BenchHandler,
    destination_count: usize,
) -> anyhow::Result<Value> {
    let deliveries = bench.options.deliveries as u64;
    let paced_jobs = u64::from(bench.options.paced_rate) * PACED_DURATION.as_secs();
    let runtime = bench.runtime;
    let label = format!("{}-d{destination_count}", handler.name());

    // Each throughput run drains a backlog: no executor may run while it is published.
    stack.stop_service(EXECUTOR);
    let receiver = Arc::new(Receiver::new());
    let destinations =
        runtime.block_on(start_destinations(&receiver, destination_count, handler))?;
    let (tenant_id, actions) = runtime.block_on(create_tenant_and_actions(
        bench.api,
        &stack.admin_token,
        &format!("bench-executor-{label}"),
        &destinations.urls,
        handler,
    ))?;

    eprintln!(
        "==> {label}: {deliveries} execution rows and jobs over {destination_count} destination(s)"
    );
    let jobs = prepare_jobs(tenant_id, &actions, 0..deliveries)?;
    let started = Instant::now();
    runtime.block_on(insert_execution_rows(bench.store, &jobs))?;
    eprintln!("    rows inserted in {:.1?}", started.elapsed());
    let started = Instant::now();
    runtime.block_on(publish_backlog(&stack.amqp_url, &jobs))?;
    eprintln!(
        "    {} messages published and confirmed in {:.1?}",
        jobs.len().div_ceil(JOBS_PER_MESSAGE),
        started.elapsed()
    );
    drop(jobs);

    eprintln!("==> {label}: throughput: starting one executor on the backlog");
    let spawned_at = Instant::now();
    let (pid, ops_port) = {
        let executor = stack.spawn_replica(bench.root_options, EXECUTOR)?;
        (executor.pid(), executor.ops_port)
    };
    stack.wait_ready(Duration::from_secs(60))?;
    wait_until(
        "throughput: webhooks received",
        DRAIN_LIMIT,
        Duration::from_millis(50),
        || Ok(receiver.throughput_requests.load(Ordering::Acquire) >= deliveries),
        || {
            format!(
                "{} of {deliveries} webhooks received",
                receiver.throughput_requests.load(Ordering::Acquire)
            )
        },
    )?;
    let cpu_at_last_request = cpu_seconds(pid)?;
    wait_until(
        "throughput: attempts recorded",
        DRAIN_LIMIT.saturating_sub(spawned_at.elapsed()),
        Duration::from_millis(100),
        || Ok(attempts_of(stack, tenant_id, handler)? >= deliveries),
        || "fewer attempts than deliveries in PostgreSQL".into(),
    )?;
    let all_recorded_after = spawned_at.elapsed();
    let cpu_s = cpu_seconds(pid)?;
    let after_throughput = ExecutorCounters::read(ops_port)?;
    let (first_request, last_request) = receiver
        .throughput_span()
        .context("no throughput request was received")?;
    let span = last_request.saturating_sub(first_request);
    let first_request_after =
        first_request.saturating_sub(spawned_at.duration_since(receiver.origin));
    let throughput_received = receiver.throughput_requests.load(Ordering::Acquire);
    let attempts = attempts_of(stack, tenant_id, handler)?;
    let succeeded = succeeded_executions_of(stack, tenant_id)?;
    if succeeded != deliveries {
        bail!("throughput: {succeeded} executions succeeded; expected {deliveries}");
    }
    if attempts != deliveries {
        bail!("throughput: {attempts} attempts recorded; expected {deliveries}");
    }
    let deliveries_per_s = deliveries as f64 / span.as_secs_f64().max(1e-3);
    eprintln!(
        "    {deliveries} deliveries in {span:.2?} ({deliveries_per_s:.0}/s), all recorded \
         {all_recorded_after:.2?} after start, {cpu_s:.2} CPU s, {} attempts held back, \
         {} deliveries redelivered",
        after_throughput.held(),
        after_throughput.redelivered
    );

    eprintln!(
        "==> {label}: latency: {paced_jobs} jobs at {} per second, one per message",
        bench.options.paced_rate
    );
    let jobs = prepare_jobs(tenant_id, &actions, deliveries..deliveries + paced_jobs)?;
    runtime.block_on(insert_execution_rows(bench.store, &jobs))?;
    receiver.paced_from.store(deliveries, Ordering::Release);
    let numbered: Vec<(u64, ExecutionJob)> = (deliveries..).zip(jobs).collect();
    let publishing = runtime.block_on(publish_paced(
        &stack.amqp_url,
        numbered,
        bench.options.paced_rate,
    ))?;
    wait_until(
        "latency: webhooks received",
        PACED_SETTLE_LIMIT,
        Duration::from_millis(50),
        || Ok(receiver.paced_requests.load(Ordering::Acquire) >= paced_jobs),
        || {
            format!(
                "{} of {paced_jobs} paced webhooks received",
                receiver.paced_requests.load(Ordering::Acquire)
            )
        },
    )?;
    wait_until(
        "latency: attempts recorded",
        PACED_SETTLE_LIMIT,
        Duration::from_millis(100),
        || Ok(attempts_of(stack, tenant_id, handler)? >= deliveries + paced_jobs),
        || "fewer attempts than deliveries in PostgreSQL".into(),
    )?;
    let after_latency = ExecutorCounters::read(ops_port)?;
    let succeeded = succeeded_executions_of(stack, tenant_id)?;
    if succeeded != deliveries + paced_jobs {
        bail!(
            "latency: {succeeded} executions succeeded; expected {}",
            deliveries + paced_jobs
        );
    }
    // Let late duplicates, if any, arrive before counting.
    std::thread::sleep(Duration::from_secs(1));
    let mut latencies = receiver
        .paced_latencies_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    latencies.sort_unstable();
    let latency_ms = |fraction: f64| round_to(percentile(&latencies, fraction) as f64 / 1000.0, 2);
    let paced_received = receiver.paced_requests.load(Ordering::Acquire);
    let throughput_received_at_end = receiver.throughput_requests.load(Ordering::Acquire);
    let unreadable = receiver.unreadable.load(Ordering::Acquire);
    if unreadable > 0 {
        bail!("{unreadable} webhooks had no readable data.n and data.sent_unix_ns");
    }
    let first_steps = receiver.first_steps.load(Ordering::Acquire);
    // Keep this executor's log: the next round's executor writes to the same file.
    if let Some(service) = stack.services.iter().find(|s| s.binary == EXECUTOR) {
        let kept = service
            .log
            .with_file_name(format!("{EXECUTOR}-{label}.log"));
        std::fs::copy(&service.log, &kept)
            .with_context(|| format!("keeping the executor's log as {}", kept.display()))?;
    }
    let smtp_connections = destinations.smtp_connections();
    drop(destinations);

    Ok(json!({
        "handler": handler.name(),
        "destinations": destination_count,
        "smtp_connections": smtp_connections,
        "workflow_first_steps_received": first_steps,
        "throughput": {
            "deliveries": deliveries,
            "deliveries_per_s": deliveries_per_s.round() as u64,
            "span_s": round_to(span.as_secs_f64(), 3),
            "first_request_after_start_s": round_to(first_request_after.as_secs_f64(), 3),
            "all_recorded_after_start_s": round_to(all_recorded_after.as_secs_f64(), 3),
            "executor_cpu_s": round_to(cpu_s, 2),
            "executor_cpu_s_at_last_request": round_to(cpu_at_last_request, 2),
            "executor_cpu_s_per_1k": round_to(cpu_s * 1000.0 / deliveries as f64, 3),
            "requests_received": throughput_received_at_end,
            "duplicates": throughput_received_at_end.saturating_sub(deliveries),
            "duplicates_when_drained": throughput_received.saturating_sub(deliveries),
            "attempts_recorded": attempts,
            "held_back": after_throughput.held(),
            "held_back_by_reason": after_throughput.held_since(&ExecutorCounters::default()),
            "redelivered": after_throughput.redelivered,
        },
        "latency": {
            "rate_per_s": bench.options.paced_rate,
            "jobs": paced_jobs,
            "publishing_s": round_to(publishing.as_secs_f64(), 3),
            "requests_received": paced_received,
            "duplicates": paced_received.saturating_sub(paced_jobs),
            "p50_ms": latency_ms(0.50),
            "p99_ms": latency_ms(0.99),
            "p999_ms": latency_ms(0.999),
            "max_ms": round_to(latencies.last().copied().unwrap_or(0) as f64 / 1000.0, 2),
            "held_back": after_latency.held().saturating_sub(after_throughput.held()),
            "held_back_by_reason": after_latency.held_since(&after_throughput),
            "redelivered": after_latency
                .redelivered
                .saturating_sub(after_throughput.redelivered),
        },
    }))
}

/// The results as a table, one row per round.
fn table(rounds: &[Value], paced_rate: u32) -> String {
    let both = |round: &Value, key: &str| {
        round["throughput"][key].as_u64().unwrap_or(0) + round["latency"][key].as_u64().unwrap_or(0)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>8} {:>5} {:>10} {:>12} {:>9} {:>12} {:>7} {:>7} {:>8} {:>4} {:>6} {:>7}",
        "handler",
        "dest",
        "deliveries",
        "deliveries/s",
        "cpu s/1k",
        "recorded s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "dup",
        "held",
        "redeliv",
    );
    for round in rounds {
        let throughput = &round["throughput"];
        let latency = &round["latency"];
        let _ = writeln!(
            out,
            "{:>8} {:>5} {:>10} {:>12} {:>9} {:>12} {:>7} {:>7} {:>8} {:>4} {:>6} {:>7}",
            round["handler"].as_str().unwrap_or("?"),
            round["destinations"].to_string(),
            throughput["deliveries"].to_string(),
            throughput["deliveries_per_s"].to_string(),
            throughput["executor_cpu_s_per_1k"].to_string(),
            throughput["all_recorded_after_start_s"].to_string(),
            latency["p50_ms"].to_string(),
            latency["p99_ms"].to_string(),
            latency["p999_ms"].to_string(),
            both(round, "duplicates"),
            both(round, "held_back"),
            both(round, "redelivered"),
        );
    }
    let _ = writeln!(
        out,
        "deliveries/s: backlog of 50-job messages, first to last webhook received; recorded s:\n\
         from starting the executor until every attempt is in PostgreSQL; latency: {paced_rate}\n\
         jobs/s, one per message, publish to webhook received; dup: webhooks beyond one per job;\n\
         held: attempts held back to the scheduler; redeliv: job messages delivered again"
    );
    for round in rounds.iter().filter(|r| r["handler"] != "webhook") {
        let plain = rounds
            .iter()
            .find(|r| r["handler"] == "webhook" && r["destinations"] == round["destinations"]);
        let rate = |r: &Value| r["throughput"]["deliveries_per_s"].as_f64().unwrap_or(0.0);
        if let Some(plain) = plain {
            let _ = writeln!(
                out,
                "{} with {} destination(s): {:.0}% of the plain webhook's deliveries/s",
                round["handler"].as_str().unwrap_or("?"),
                round["destinations"],
                100.0 * rate(round) / rate(plain).max(1.0)
            );
        }
        let http = rounds
            .iter()
            .find(|r| r["handler"] == "http" && r["destinations"] == round["destinations"]);
        if round["handler"] == "workflow"
            && let Some(http) = http
        {
            // The run is the http request and two steps more (a set, then the request again).
            let per_step = |key: &str| {
                let run = round["latency"][key].as_f64().unwrap_or(0.0);
                let one = http["latency"][key].as_f64().unwrap_or(0.0);
                (run - one) / 2.0
            };
            let _ = writeln!(
                out,
                "workflow with {} destination(s): {} runs/s; each step after the first adds \
                 p50 {:.2} ms, p99 {:.2} ms over the http handler's latency",
                round["destinations"],
                rate(round),
                per_step("p50_ms"),
                per_step("p99_ms")
            );
        }
        if round["handler"] == "email" {
            let _ = writeln!(
                out,
                "email with {} destination(s): {} messages over {} SMTP connection(s)",
                round["destinations"],
                round["throughput"]["deliveries"].as_u64().unwrap_or(0)
                    + round["latency"]["jobs"].as_u64().unwrap_or(0),
                round["smtp_connections"]
            );
        }
    }
    out
}

pub fn run(root: &Path, bench: ExecutorBenchOptions) -> anyhow::Result<ExitCode> {
    if bench.deliveries == 0 || bench.paced_rate == 0 || bench.destination_counts.is_empty() {
        bail!("--deliveries, --paced-rate and the destination counts must be positive");
    }
    crate::up::build(root, true)?;
    let base = root.join("target/bench/executor");
    // A fresh broker and database each run, so earlier runs' rows do not weigh on this one.
    if base.exists() {
        std::fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;
    }
    let replicas = BTreeMap::from([
        ("herald-ingest", 1),
        ("herald-matcher", 0),
        (EXECUTOR, 0),
        // Releases attempts the executor holds back (a destination with too much waiting
        // for it); without it they would never come back.
        ("herald-scheduler", 1),
    ]);
    let stack_options = StackOptions {
        base: base.clone(),
        bin_dir: root.join("target/release"),
        ports: PreferredPorts {
            amqp: 5683,
            management: 15683,
            postgres: 5443,
            api: 8181,
            ops: 9200,
        },
        fast_database: false,
        replicas,
        env: vec![
            ("HERALD_TELEMETRY__LOG_LEVEL".into(), "warn".into()),
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS".into(),
                "127.0.0.1/32".into(),
            ),
        ],
    };
    let mut stack = Stack::start(stack_options.clone())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: stack.api_url.clone(),
    };
    let store = runtime
        .block_on(Store::connect(&DatabaseConfig {
            url: stack.database_url.clone(),
            max_connections: 4,
            acquire_timeout_ms: 10_000,
            migrate_on_start: false,
        }))
        .context("connecting to the bench database")?;
    let shared = Bench {
        root_options: &stack_options,
        runtime: &runtime,
        api: &api,
        store: &store,
        options: &bench,
    };
    let started = Instant::now();
    let render_us = http_render_us(root)?;
    let fsync_us = fsync_floor_us(&base);
    let mut rounds = Vec::new();
    for &handler in &bench.handlers {
        for &destination_count in &bench.destination_counts {
            rounds.push(run_round(&shared, &mut stack, handler, destination_count)?);
        }
    }
    eprintln!("    all rounds in {:.1?}", started.elapsed());
    runtime.block_on(store.pool().close());
    drop(runtime);
    stack.stop();

    let (cpus, model) = machine();
    println!(
        "herald-executor, one process: {cpus} CPUs ({model}), shared with RabbitMQ, PostgreSQL (fsync on) and the receiver"
    );
    print!("{}", table(&rounds, bench.paced_rate));
    println!(
        "rendering the http request (url, a header, five-template body): {render_us:.1} µs (release)"
    );
    match fsync_us {
        Some(us) => {
            println!("floor: fsync of one 8 KiB write on this disk {us:.0} µs (pg_test_fsync)")
        }
        None => println!("floor: pg_test_fsync did not run"),
    }
    let results = json!({
        "machine": {"cpus": cpus, "model": model},
        "fsync_us": fsync_us,
        "http_render_us": round_to(render_us, 2),
        "jobs_per_message": JOBS_PER_MESSAGE,
        "rounds": rounds,
    });
    let path = base.join("results.json");
    std::fs::create_dir_all(&base)?;
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(ExitCode::SUCCESS)
}
