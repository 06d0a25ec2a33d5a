//! `cargo xtask bench matcher-service`: the matcher service on the real broker and database,
//! measured from events waiting in its queue to durable executions and confirmed jobs.
//!
//! Method. A stack with ingest alone (no matcher, executor or scheduler) on a database with
//! fsync on. Tenants and actions are created over the API: 100 actions per tenant, each event
//! type matched by exactly one action, each action with one condition. Events are queued while
//! no matcher runs, in one of two ways:
//! - `ingest`: accepted over HTTP by ingest, which stores them and publishes them many per
//!   broker message (how every event that comes through Herald's API travels);
//! - `outside`: published straight to `herald.events` by another system, one JSON event per
//!   message; the matcher then stores the event itself.
//!
//! Then one matcher starts and drains its queue. The rate is the events over the span from the
//! first batch committed to the last (`matched_at`, so the matcher's start-up is left out), and
//! the matcher's CPU time is read from /proc. Every event must have exactly one execution.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use herald_common::broker::topology::EVENTS_EXCHANGE;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::api::Api;
use crate::stack::{PreferredPorts, Stack, StackOptions};

const ENTITIES: [&str; 20] = [
    "user",
    "order",
    "payment",
    "invoice",
    "refund",
    "customer",
    "subscription",
    "product",
    "cart",
    "shipment",
    "review",
    "coupon",
    "account",
    "session",
    "ticket",
    "message",
    "file",
    "report",
    "team",
    "project",
];
const VERBS: [&str; 5] = ["created", "updated", "deleted", "completed", "failed"];
const ACTIONS_PER_TENANT: usize = 100;
const TENANTS: usize = 10;

pub struct ServiceBenchOptions {
    /// Events queued through ingest.
    pub ingest_events: usize,
    /// Events published straight to the broker, one per message.
    pub outside_events: usize,
}

/// The event type that action `k` of every tenant matches.
fn event_type(k: usize) -> String {
    format!(
        "{}.{}",
        ENTITIES[k % ENTITIES.len()],
        VERBS[k / ENTITIES.len() % VERBS.len()]
    )
}

/// Event `i`: about 400 bytes of JSON with nested data and arrays.
fn event_body(i: usize) -> Value {
    json!({
        "type": event_type(i / TENANTS % ACTIONS_PER_TENANT),
        "source": "bench",
        "data": {
            "id": format!("obj_{i:010}"),
            "amount": i % 10_000,
            "currency": "usd",
            "customer": {"id": format!("cus_{:06}", i % 100_000), "email": "someone@example.com",
                         "tags": ["vip", "eu", "beta"]},
            "items": [{"sku": "sku-1", "quantity": 1, "price": 1200},
                      {"sku": "sku-2", "quantity": 3, "price": 250}],
            "note": "a typical domain event with a little nesting and a few arrays in it",
        },
        "metadata": {"region": "eu-west-1", "request_id": format!("req-{i}")},
    })
}

struct Tenant {
    id: String,
    key: String,
}

async fn create_tenants(api: &Api, admin: &str, group: &str) -> anyhow::Result<Vec<Tenant>> {
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        let (id, key) = api.tenant_with_key(admin, &format!("{group}-{t}")).await?;
        tenants.push(Tenant { id, key });
    }
    let creations = tenants.iter().flat_map(|tenant| {
        (0..ACTIONS_PER_TENANT).map(move |k| {
            let body = json!({
                "name": format!("action-{k:03}"),
                "event_types": [event_type(k)],
                "conditions": [{"path": "data.amount", "op": "gte", "value": 0}],
                "handler": {"type": "webhook", "url": format!("https://receiver.example/hooks/{k}")},
            });
            api.call("POST", "/v1/actions", &tenant.key, body)
        })
    });
    let results: Vec<anyhow::Result<Value>> =
        stream::iter(creations).buffer_unordered(16).collect().await;
    for result in results {
        result?;
    }
    Ok(tenants)
}

/// Queues events through ingest's API, many requests at once (ingest batches them).
async fn queue_through_ingest(api: &Api, tenants: &[Tenant], count: usize) -> anyhow::Result<()> {
    let requests = (0..count).map(|i| {
        let tenant = &tenants[i % tenants.len()];
        api.call("POST", "/v1/events", &tenant.key, event_body(i))
    });
    let mut results = stream::iter(requests).buffer_unordered(128);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// Publishes events straight to `herald.events`, one per message, with many confirms in flight.
async fn queue_from_outside(
    amqp_url: &str,
    tenants: &[Tenant],
    count: usize,
) -> anyhow::Result<()> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut pending = VecDeque::new();
    for i in 0..count {
        let mut body = event_body(i);
        body["tenant_id"] = Value::from(tenants[i % tenants.len()].id.clone());
        let routing_key = body["type"].as_str().unwrap_or_default().to_owned();
        let confirm = channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_message_id(format!("bench-outside-{i}").into())
                    .with_delivery_mode(2),
            )
            .await?;
        pending.push_back(confirm);
        if pending.len() >= 1000 {
            pending.pop_front().expect("not empty").await?;
        }
    }
    for confirm in pending {
        confirm.await?;
    }
    connection.close(200, "done".into()).await?;
    Ok(())
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

/// One run: start a matcher on the queued events and wait for all of them to be matched.
fn drain(
    stack: &mut Stack,
    options: &StackOptions,
    name: &str,
    count: usize,
) -> anyhow::Result<Value> {
    // Each scenario has tenants of its own, named after it.
    let in_group = format!("tenant_id IN (SELECT id FROM tenants WHERE name LIKE '{name}-%')");
    eprintln!("==> {name}: starting a matcher on {count} queued events");
    let pid = stack.spawn_replica(options, "herald-matcher")?.pid();
    stack.wait_ready(Duration::from_secs(60))?;
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let postgres = stack
        .postgres
        .as_ref()
        .context("the benchmark runs on its own local database")?;
    loop {
        let matched: usize = postgres
            .psql(
                "herald",
                &format!("SELECT count(*) FROM events WHERE matched_at IS NOT NULL AND {in_group}"),
            )?
            .trim()
            .parse()?;
        if matched >= count {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{name}: only {matched} of {count} events were matched within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let drain_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds(pid) - cpu_before;
    let figures = postgres.psql(
        "herald",
        &format!(
            "SELECT count(*), extract(epoch FROM max(matched_at) - min(matched_at)),
                    (SELECT count(*) FROM executions WHERE {in_group})
             FROM events WHERE {in_group}"
        ),
    )?;
    let parts: Vec<&str> = figures.trim().split('|').collect();
    let [events, span, executions] = parts[..] else {
        bail!("unexpected figures: {figures}");
    };
    let (events, span, executions): (usize, f64, usize) =
        (events.parse()?, span.parse()?, executions.parse()?);
    if events != count || executions != count {
        bail!("{name}: {events} events and {executions} executions; expected {count} of each");
    }
    stack.stop_service("herald-matcher");
    Ok(json!({
        "scenario": name,
        "events": count,
        "executions": executions,
        "events_per_s": (count as f64 / span.max(1e-3)).round(),
        "span_s": (span * 100.0).round() / 100.0,
        "drain_s": (drain_s * 10.0).round() / 10.0,
        "matcher_cpu_s": (cpu_s * 100.0).round() / 100.0,
        "matcher_cpu_us_per_event": (cpu_s * 1e6 / count as f64).round(),
    }))
}

pub fn run(root: &Path, bench: ServiceBenchOptions) -> anyhow::Result<ExitCode> {
    crate::up::build(root, true)?;
    let base = root.join("target/bench/matcher-service");
    // A fresh broker and database each run, so earlier runs' rows do not weigh on this one.
    let _ = std::fs::remove_dir_all(&base);
    let replicas = BTreeMap::from([
        ("herald-ingest", 1),
        ("herald-matcher", 0),
        ("herald-executor", 0),
        ("herald-scheduler", 0),
    ]);
    let options = StackOptions {
        base: base.clone(),
        bin_dir: root.join("target/release"),
        ports: PreferredPorts {
            amqp: 5682,
            management: 15682,
            postgres: 5442,
            api: 8180,
            ops: 9190,
        },
        fast_database: false,
        replicas,
        env: vec![
            ("HERALD_TELEMETRY__LOG_LEVEL".into(), "warn".into()),
            // A benchmark measures the pipeline, not the per-tenant request limit.
            ("HERALD_INGEST__TENANT_RATE_PER_S".into(), "0".into()),
        ],
    };
    let mut stack = Stack::start(options.clone())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: stack.api_url.clone(),
    };
    let mut results = Vec::new();
    if bench.ingest_events > 0 {
        let tenants = runtime.block_on(create_tenants(&api, &stack.admin_token, "ingest"))?;
        eprintln!(
            "==> ingest: queueing {} events over HTTP",
            bench.ingest_events
        );
        let started = Instant::now();
        runtime.block_on(queue_through_ingest(&api, &tenants, bench.ingest_events))?;
        eprintln!("    accepted in {:.1?}", started.elapsed());
        results.push(drain(&mut stack, &options, "ingest", bench.ingest_events)?);
    }
    if bench.outside_events > 0 {
        let tenants = runtime.block_on(create_tenants(&api, &stack.admin_token, "outside"))?;
        eprintln!(
            "==> outside: publishing {} events to {EVENTS_EXCHANGE}",
            bench.outside_events
        );
        let started = Instant::now();
        runtime.block_on(queue_from_outside(
            &stack.amqp_url,
            &tenants,
            bench.outside_events,
        ))?;
        eprintln!("    confirmed in {:.1?}", started.elapsed());
        results.push(drain(
            &mut stack,
            &options,
            "outside",
            bench.outside_events,
        )?);
    }
    drop(runtime);
    stack.stop();

    println!(
        "{:<9} {:>8} {:>11} {:>8} {:>8} {:>10} {:>12}",
        "scenario", "events", "events/s", "span s", "drain s", "cpu s", "cpu us/event"
    );
    let mut file = String::new();
    for r in &results {
        println!(
            "{:<9} {:>8} {:>11} {:>8} {:>8} {:>10} {:>12}",
            r["scenario"].as_str().unwrap_or(""),
            r["events"].to_string(),
            r["events_per_s"].to_string(),
            r["span_s"].to_string(),
            r["drain_s"].to_string(),
            r["matcher_cpu_s"].to_string(),
            r["matcher_cpu_us_per_event"].to_string(),
        );
        file.push_str(&r.to_string());
        file.push('\n');
    }
    std::fs::create_dir_all(&base)?;
    std::fs::write(base.join("results.jsonl"), file)?;
    eprintln!(
        "results written to {}",
        base.join("results.jsonl").display()
    );
    Ok(ExitCode::SUCCESS)
}
