//! `cargo xtask bench latency`: the latency sweep. One stack as `bench load` starts it; first
//! the same run's floor (a bare publish-to-delivery hop on a quorum queue like Herald's and on
//! a classic one, a bare PostgreSQL commit, a bare loopback HTTP request); then `bench load`'s
//! measurement at each rate in turn, one webhook action per event, each round a tenant of its
//! own. Reports p50/p99/p99.9 against rate, each also as a multiple of the floor of the hops
//! the path needs; CPU per event by process; and the budget of one event, step by step, from
//! the services' own `herald_path_step_seconds` and `herald_broker_hop_seconds` (their means
//! over the round). Writes a JSON result and an SVG plot of latency against rate with Svix's
//! published figures marked, under `target/bench/latency/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::bench_load::{LoadOptions, Via, locked, measure, start_stack};
use crate::bench_support::{machine, percentile, round_to, unix_nanos};

/// Svix's published figures on a machine of this kind: (events/s, p50 ms, p99 ms).
const SVIX: [(u32, Option<f64>, f64); 2] = [(400, Some(1.4), 8.6), (700, None, 16.5)];
/// Samples taken of each floor.
const FLOOR_SAMPLES: usize = 300;

#[derive(Debug, Clone)]
pub struct LatencyOptions {
    pub rates: Vec<u32>,
    pub seconds: u32,
    pub via: Via,
    /// Names the result files `sweep-<via>-<name>`, so that runs under other settings stay.
    pub name: Option<String>,
    /// An earlier sweep's JSON, drawn dotted beside this one: a before and after in one plot.
    pub against: Option<std::path::PathBuf>,
}

pub fn run(root: &Path, options: LatencyOptions) -> anyhow::Result<ExitCode> {
    // Read first: a wrong path should not cost a sweep's minutes.
    let against = match &options.against {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("reading the sweep to compare with, {}", path.display())
            })?;
            let earlier: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a sweep's JSON", path.display()))?;
            earlier["rounds"].as_array().cloned()
        }
        None => None,
    };
    crate::up::build(root, true)?;
    let base = root.join("target/bench/latency");
    let replicas = [
        "herald-ingest",
        "herald-matcher",
        "herald-executor",
        "herald-scheduler",
    ]
    .into_iter()
    .map(|name| (name, 1))
    .collect();
    let (stack, stack_options) = start_stack(root, &base, &replicas)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let (amqp, database) = {
            let stack = locked(&stack);
            (stack.amqp_url.clone(), stack.database_url.clone())
        };
        let floor = measure_floor(&amqp, &database).await?;
        eprintln!("==> floor: {floor}");
        let ops: Vec<(String, u16)> = locked(&stack)
            .services
            .iter()
            .map(|s| (s.binary.to_owned(), s.ops_port))
            .collect();
        let mut rounds = Vec::new();
        for &rate in &options.rates {
            eprintln!(
                "==> {rate} events/s for {} s",
                round_seconds(&options, rate)
            );
            let load = LoadOptions {
                rate,
                seconds: round_seconds(&options, rate),
                warmup: 3,
                fanout: 1,
                via: options.via,
                replicas: replicas.clone(),
                concurrency: 256,
                batch: 1,
                faults: Vec::new(),
            };
            let before = scrape(&ops).await;
            let report = measure(&stack, &stack_options, &load, &format!("rate-{rate}")).await?;
            let after = scrape(&ops).await;
            eprintln!("{}", report.summary);
            rounds.push(round_of(
                rate,
                &report.json,
                &budget(&before, &after),
                &floor,
            ));
        }
        anyhow::Ok((floor, rounds))
    });
    drop(runtime);
    locked(&stack).stop();
    let (floor, rounds) = result?;
    let (cpus, model) = machine();
    let erl_args = crate::rabbitmq::erl_args();
    let json = json!({
        "machine": {"cpus": cpus, "model": model},
        "via": format!("{:?}", options.via).to_lowercase(),
        "broker_erl_args": erl_args,
        "floor": floor,
        "rounds": rounds,
    });
    std::fs::create_dir_all(&base)?;
    let via = json["via"].as_str().unwrap_or("http");
    let name = match &options.name {
        Some(label) => format!("sweep-{via}-{label}"),
        None => format!("sweep-{via}"),
    };
    let json_path = base.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")?;
    let svg_path = base.join(format!("{name}.svg"));
    std::fs::write(
        &svg_path,
        plot(&rounds, path_floor_ms(&floor), against.as_deref()),
    )?;
    println!(
        "herald end to end ({:?}, one webhook per event): {cpus} CPUs ({model}); broker Erlang args {erl_args:?}",
        options.via
    );
    println!("{}", table(&rounds, &floor));
    eprintln!(
        "results: {} and {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// At one event a second, a short round has too few deliveries to say anything.
fn round_seconds(options: &LatencyOptions, rate: u32) -> u32 {
    if rate < 10 {
        options.seconds.max(60)
    } else {
        options.seconds
    }
}

/// The floor: median and p99 of each bare hop, in milliseconds.
async fn measure_floor(amqp: &str, database: &str) -> anyhow::Result<Value> {
    let quorum = broker_hop(amqp, "bench.floor.quorum", "quorum").await?;
    let classic = broker_hop(amqp, "bench.floor.classic", "classic").await?;
    let commit = database_commit(database).await?;
    let http = loopback_request().await?;
    Ok(json!({
        "broker_hop_quorum": quorum.0, "broker_confirm_quorum": quorum.1,
        "broker_hop_classic": classic.0, "broker_confirm_classic": classic.1,
        "database_commit": commit,
        "http_request": http,
        "fsync_us": crate::bench_handlers::fsync_floor_us(Path::new("target/bench/latency")),
    }))
}

/// `{p50, p99}` in milliseconds of samples in microseconds.
fn quantiles(mut micros: Vec<u64>) -> Value {
    micros.sort_unstable();
    json!({
        "p50": round_to(percentile(&micros, 0.5) as f64 / 1000.0, 3),
        "p99": round_to(percentile(&micros, 0.99) as f64 / 1000.0, 3),
    })
}

/// Persistent messages with confirms, one every 10 ms, through a durable queue of `kind`:
/// publish to delivery, and publish to confirm.
async fn broker_hop(amqp: &str, queue: &str, kind: &str) -> anyhow::Result<(Value, Value)> {
    let connection = Connection::connect(amqp, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let consuming = connection.create_channel().await?;
    let mut consumer = consuming
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let receiving = tokio::spawn(async move {
        let mut hops = Vec::with_capacity(FLOOR_SAMPLES);
        while hops.len() < FLOOR_SAMPLES {
            let Some(Ok(delivery)) = consumer.next().await else {
                break;
            };
            let sent: u64 = std::str::from_utf8(&delivery.data)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            hops.push(unix_nanos().saturating_sub(sent) / 1000);
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        hops
    });
    let mut confirms = Vec::with_capacity(FLOOR_SAMPLES);
    for _ in 0..FLOOR_SAMPLES {
        let sent = unix_nanos();
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                sent.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
        confirms.push(unix_nanos().saturating_sub(sent) / 1000);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let hops = tokio::time::timeout(Duration::from_secs(30), receiving)
        .await
        .context("the floor's consumer took too long")??;
    let _ = channel.close(200, "done".into()).await;
    let _ = connection.close(200, "done".into()).await;
    Ok((quantiles(hops), quantiles(confirms)))
}

/// One-row inserts, each its own transaction (a commit waits for its WAL flush).
async fn database_commit(database: &str) -> anyhow::Result<Value> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(database).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, n bigint)")
        .execute(&mut connection)
        .await?;
    let mut commits = Vec::with_capacity(FLOOR_SAMPLES);
    for n in 0..FLOOR_SAMPLES as i64 {
        let started = std::time::Instant::now();
        sqlx::query("INSERT INTO bench_floor (n) VALUES ($1)")
            .bind(n)
            .execute(&mut connection)
            .await?;
        commits.push(started.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(quantiles(commits))
}

/// A small POST to a receiver on loopback over a kept-alive connection.
async fn loopback_request() -> anyhow::Result<Value> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let router = axum::Router::new().route("/hook", axum::routing::post(|| async { "" }));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let body = json!({"type": "bench.floor", "data": {"n": 1, "sent_unix_ns": unix_nanos()}});
    let mut requests = Vec::with_capacity(FLOOR_SAMPLES);
    for _ in 0..FLOOR_SAMPLES {
        let started = std::time::Instant::now();
        client.post(&url).json(&body).send().await?.bytes().await?;
        requests.push(started.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.abort();
    Ok(quantiles(requests))
}

/// The median floor of the hops an event's path needs before its webhook arrives: two HTTP
/// requests (in and out), two commits (the event, its executions) and two broker hops on
/// Herald's queue type (to the matcher, to the executor).
fn path_floor_ms(floor: &Value) -> f64 {
    let p50 = |name: &str| floor[name]["p50"].as_f64().unwrap_or(0.0);
    2.0 * (p50("http_request") + p50("database_commit") + p50("broker_hop_quorum"))
}

/// Each process's `herald_path_step_seconds` and `herald_broker_hop_seconds` (sum, count) by
/// label, summed over replicas.
async fn scrape(ops: &[(String, u16)]) -> BTreeMap<String, (f64, f64)> {
    let client = reqwest::Client::new();
    let mut totals: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (_, port) in ops {
        let Ok(response) = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            for (family, prefix) in [
                ("herald_path_step_seconds", ""),
                ("herald_broker_hop_seconds", "broker_to_"),
            ] {
                let label = |suffix: &str| {
                    name.strip_prefix(&format!("{family}_{suffix}{{"))
                        .and_then(|rest| rest.split('"').nth(1))
                        .map(|l| format!("{prefix}{l}"))
                };
                if let Some(step) = label("sum") {
                    totals.entry(step).or_default().0 += value;
                } else if let Some(step) = label("count") {
                    totals.entry(step).or_default().1 += value;
                }
            }
        }
    }
    totals
}

/// The mean of each step over a round, in milliseconds, in the path's order.
fn budget(
    before: &BTreeMap<String, (f64, f64)>,
    after: &BTreeMap<String, (f64, f64)>,
) -> Vec<(String, f64)> {
    const ORDER: [&str; 12] = [
        "ingest_batch_wait",
        "ingest_event_commit",
        "ingest_event_publish",
        "broker_to_herald.matcher.events",
        "matcher_barrier",
        "matcher_match",
        "matcher_executions_commit",
        "matcher_jobs_publish",
        "broker_to_herald.executor.first",
        "executor_prepare",
        "executor_request",
        "executor_record",
    ];
    ORDER
        .iter()
        .filter_map(|step| {
            let (sum, count) = after.get(*step)?;
            let (sum0, count0) = before.get(*step).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| (step.to_string(), round_to((sum - sum0) / n * 1000.0, 3)))
        })
        .collect()
}

fn round_of(rate: u32, load: &Value, budget: &[(String, f64)], floor: &Value) -> Value {
    let path_floor = path_floor_ms(floor);
    let latency = &load["latency_ms"];
    let times = |name: &str| {
        latency[name]
            .as_f64()
            .map(|ms| round_to(ms / path_floor.max(0.001), 1))
    };
    // Percent of one core per process, as CPU time per event delivered: past what the machine
    // can take, the target rate is not what it did.
    let delivered = load["deliveries_per_s_in_window"]
        .as_f64()
        .filter(|d| *d > 0.0)
        .unwrap_or_else(|| f64::from(rate.max(1)));
    let per_event_us: BTreeMap<String, f64> = load["cpu_percent_avg"]
        .as_object()
        .map(|cpu| {
            cpu.iter()
                .map(|(name, pct)| {
                    let us = pct.as_f64().unwrap_or(0.0) / 100.0 / delivered * 1e6;
                    (name.clone(), round_to(us, 0))
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "rate": rate,
        "accepted_per_s": load["accepted_per_s"],
        "deliveries_per_s": load["deliveries_per_s_in_window"],
        "lost": load["lost"],
        "latency_ms": latency,
        "latency_in_path_floors": {"p50": times("p50"), "p99": times("p99")},
        "cpu_percent": load["cpu_percent_avg"],
        "cpu_us_per_event": per_event_us,
        "budget_ms": budget.iter().map(|(s, ms)| json!({"step": s, "mean_ms": ms})).collect::<Vec<_>>(),
    })
}

fn table(rounds: &[Value], floor: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "floor (p50 / p99 ms): broker hop quorum {} / {}, classic {} / {}; commit {} / {}; \
         loopback HTTP {} / {}; fsync {} µs; the path's floor (2 HTTP + 2 commits + 2 quorum \
         hops) {:.2} ms",
        floor["broker_hop_quorum"]["p50"],
        floor["broker_hop_quorum"]["p99"],
        floor["broker_hop_classic"]["p50"],
        floor["broker_hop_classic"]["p99"],
        floor["database_commit"]["p50"],
        floor["database_commit"]["p99"],
        floor["http_request"]["p50"],
        floor["http_request"]["p99"],
        floor["fsync_us"],
        path_floor_ms(floor),
    );
    let _ = writeln!(
        out,
        "{:>6} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>7}  CPU µs per event by process",
        "rate", "accepted", "delivered", "p50 ms", "p99 ms", "p99.9 ms", "p50 ×fl", "p99 ×fl"
    );
    for round in rounds {
        let cpu = round["cpu_us_per_event"]
            .as_object()
            .map(|m| {
                // The machine's row is already the sum of everything; Herald's is its services'.
                let herald: f64 = m
                    .iter()
                    .filter(|(k, _)| k.starts_with("herald-"))
                    .filter_map(|(_, v)| v.as_f64())
                    .sum();
                let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!("Herald {herald:.0}: {}", parts.join(", "))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>6} {:>9} {:>9} {:>8} {:>8} {:>9} {:>7} {:>7}  {cpu}",
            round["rate"].to_string(),
            round["accepted_per_s"].to_string(),
            round["deliveries_per_s"].to_string(),
            round["latency_ms"]["p50"].to_string(),
            round["latency_ms"]["p99"].to_string(),
            round["latency_ms"]["p999"].to_string(),
            round["latency_in_path_floors"]["p50"].to_string(),
            round["latency_in_path_floors"]["p99"].to_string(),
        );
    }
    let _ = writeln!(out, "budget of one event (mean ms per step, by rate):");
    let steps: Vec<String> = rounds
        .iter()
        .flat_map(|r| r["budget_ms"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["step"].as_str().map(str::to_owned))
        .fold(Vec::new(), |mut seen, step| {
            if !seen.contains(&step) {
                seen.push(step);
            }
            seen
        });
    for step in steps {
        let cells: Vec<String> = rounds
            .iter()
            .map(|r| {
                let ms = r["budget_ms"]
                    .as_array()
                    .and_then(|b| b.iter().find(|s| s["step"] == step.as_str()))
                    .map(|s| s["mean_ms"].to_string())
                    .unwrap_or_else(|| "-".into());
                format!("{}/s {ms}", r["rate"])
            })
            .collect();
        let _ = writeln!(out, "  {step:<34} {}", cells.join("  "));
    }
    out
}

/// Latency (log scale) against rate (log scale): p50, p99 and p99.9, the path's floor,
/// Svix's published points, and an earlier sweep's p50 and p99 dashed when given.
fn plot(rounds: &[Value], path_floor_ms: f64, against: Option<&[Value]>) -> String {
    let (width, height, pad) = (760.0, 420.0, 60.0);
    let rates: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r["rate"].as_f64())
        .map(|r| r.max(1.0))
        .collect();
    let (x_min, x_max) = (1.0f64, rates.iter().copied().fold(10_000.0, f64::max));
    let (y_min, y_max) = (0.1f64, 1000.0f64);
    let x = |rate: f64| {
        pad + (rate.max(1.0).ln() - x_min.ln()) / (x_max.ln() - x_min.ln()) * (width - 2.0 * pad)
    };
    let y = |ms: f64| {
        let ms = ms.clamp(y_min, y_max);
        height - pad - (ms.ln() - y_min.ln()) / (y_max.ln() - y_min.ln()) * (height - 2.0 * pad)
    };
    let line = |rounds: &[Value], key: &str, colour: &str, dash: &str| {
        let points: Vec<String> = rounds
            .iter()
            .filter_map(|r| {
                Some(format!(
                    "{:.1},{:.1}",
                    x(r["rate"].as_f64()?),
                    y(r["latency_ms"][key].as_f64()?)
                ))
            })
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            points.join(" ")
        )
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="24" font-size="14">Herald end to end: latency against rate (log scales)</text>
"#
    );
    for ms in [0.1, 1.0, 10.0, 100.0, 1000.0] {
        svg += &format!(
            r##"<line x1="{pad}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="8" y="{:.1}">{ms} ms</text>
"##,
            width - pad,
            y(ms) + 4.0,
            y = y(ms)
        );
    }
    for rate in [1.0, 10.0, 100.0, 1000.0, 10_000.0] {
        svg += &format!(
            r#"<text x="{:.1}" y="{}">{rate}/s</text>
"#,
            x(rate) - 12.0,
            height - pad + 18.0
        );
    }
    svg += &line(rounds, "p50", "#1f77b4", "none");
    svg += &line(rounds, "p99", "#d62728", "none");
    svg += &line(rounds, "p999", "#9467bd", "none");
    if let Some(earlier) = against {
        svg += &line(earlier, "p50", "#1f77b4", "2 4");
        svg += &line(earlier, "p99", "#d62728", "2 4");
        svg += &format!(
            r##"<text x="{}" y="62">dotted: the sweep compared with (p50, p99)</text>
"##,
            pad + 300.0
        );
    }
    svg += &format!(
        r##"<line x1="{pad}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#2ca02c" stroke-dasharray="4 3"/>
"##,
        width - pad,
        y = y(path_floor_ms)
    );
    for (rate, p50, p99) in SVIX {
        let rx = x(f64::from(rate));
        if let Some(p50) = p50 {
            svg += &format!(
                r##"<circle cx="{rx:.1}" cy="{:.1}" r="5" fill="none" stroke="#1f77b4"/>
"##,
                y(p50)
            );
        }
        svg += &format!(
            r##"<circle cx="{rx:.1}" cy="{:.1}" r="5" fill="none" stroke="#d62728"/>
"##,
            y(p99)
        );
    }
    svg += &format!(
        r##"<text x="{}" y="44"><tspan fill="#1f77b4">p50</tspan> <tspan fill="#d62728">p99</tspan> <tspan fill="#9467bd">p99.9</tspan> <tspan fill="#2ca02c">- - the path's floor</tspan> ○ Svix (p50, p99)</text>
</svg>
"##,
        pad + 300.0
    );
    svg
}
