//! Circuit breakers and isolation between destinations: a dead endpoint opens its circuit,
//! is probed and closes again once it answers, without delaying a healthy endpoint.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use herald_common::config::Config;
use herald_tests::sandbox::SandboxOptions;
use herald_tests::{Receiver, Reply, Sandbox, eventually};
use serde_json::{Value, json};

use crate::support::webhook_action;

/// Circuits that react within a test's patience.
fn quick_circuits(config: &mut Config) {
    config.executor.circuit_cooldown_ms = 1000;
    config.executor.circuit_sync_ms = 100;
}

fn quick_sandbox() -> SandboxOptions {
    SandboxOptions {
        configure: quick_circuits,
        ..SandboxOptions::default()
    }
}

async fn endpoints(sandbox: &Sandbox, key: &str) -> Vec<Value> {
    let (status, body) = sandbox
        .call(reqwest::Method::GET, "/v1/endpoints", Some(key), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

async fn endpoint(sandbox: &Sandbox, key: &str, receiver: &Receiver) -> Option<Value> {
    let wanted = format!("http://{}", receiver.addr);
    endpoints(sandbox, key)
        .await
        .into_iter()
        .find(|e| e["endpoint"] == wanted.as_str())
}

/// The bound promised for a healthy endpoint beside a dead one: its deliveries' p99, from the
/// event's acceptance to the webhook's arrival, stays under the dead endpoint's timeout (1 s),
/// so none of them waited behind a dead attempt.
const HEALTHY_P99_BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_is_isolated_and_its_circuit_opens_probes_and_closes() {
    let sandbox = Sandbox::with(quick_sandbox()).await;
    let tenant = sandbox.tenant().await;
    let dead = Receiver::start().await;
    dead.fallback(Reply::status(200).after(Duration::from_secs(30)));
    let healthy = Receiver::start().await;
    let mut dead_action = webhook_action(
        "dead",
        "feed.dead",
        &dead.url("/hook"),
        json!({"max_attempts": 20, "delays_s": [1]}),
    );
    dead_action["handler"]["timeout_ms"] = json!(1000);
    sandbox.action(&tenant, dead_action).await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "healthy",
                "feed.ok",
                &healthy.url("/hook"),
                json!({"max_attempts": 3, "delays_s": [1]}),
            ),
        )
        .await;

    let mut dead_events = Vec::new();
    for n in 0..10 {
        dead_events.push(
            sandbox
                .event(&tenant, json!({"type": "feed.dead", "data": {"n": n}}))
                .await,
        );
    }
    // 1000 events for the healthy endpoint, 20 at a time, while the dead one times out.
    let mut sent: HashMap<String, Instant> = HashMap::new();
    for chunk in 0..50 {
        let requests = (0..20).map(|i| {
            let sandbox = &sandbox;
            let tenant = &tenant;
            async move {
                let at = Instant::now();
                let id = sandbox
                    .event(
                        tenant,
                        json!({"type": "feed.ok", "data": {"n": chunk * 20 + i}}),
                    )
                    .await;
                (id, at)
            }
        });
        sent.extend(join_all(requests).await);
    }
    eventually(
        "1000 healthy deliveries",
        Duration::from_secs(60),
        || async { (healthy.count() >= 1000).then_some(()) },
    )
    .await;
    let mut latencies: Vec<Duration> = healthy
        .received()
        .iter()
        .map(|r| {
            let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
            r.at - sent[&id]
        })
        .collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "healthy endpoint beside a dead one: p50 {:?}, p99 {p99:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
    assert!(p99 < HEALTHY_P99_BOUND, "healthy p99 {p99:?}");
    assert_eq!(healthy.count(), 1000, "each healthy event delivered once");

    // The dead endpoint's circuit opens, and a probe that fails opens it again.
    let open = eventually(
        "the circuit to open and fail a probe",
        Duration::from_secs(30),
        || async {
            endpoint(&sandbox, &tenant.key, &dead)
                .await
                .filter(|e| e["trips"].as_u64() >= Some(2))
        },
    )
    .await;
    assert_ne!(open["state"], "closed", "{open}");
    assert!(open["last_error"].as_str().is_some(), "{open}");
    let tries_while_open = dead.count();

    // It recovers: a probe succeeds, the circuit closes, and the held executions go through.
    dead.fallback(Reply::status(200));
    for event_id in &dead_events {
        let executions = sandbox
            .terminal_executions(&tenant, event_id, 1, Duration::from_secs(60))
            .await;
        assert_eq!(executions[0]["status"], "succeeded", "{}", executions[0]);
        let attempts = executions[0]["attempts"].as_u64().unwrap();
        assert!(
            attempts <= 5,
            "waiting behind an open circuit spent no attempts ({attempts} used)"
        );
    }
    let closed = endpoint(&sandbox, &tenant.key, &dead).await.unwrap();
    assert_eq!(closed["state"], "closed", "{closed}");
    assert!(
        tries_while_open <= 10 + 4,
        "while open, only probes reached the endpoint ({tries_while_open} requests)"
    );
    sandbox.stop().await;
}

/// A long cool-down, so that an executor that missed a change would hold work for long.
fn slow_cooldown(config: &mut Config) {
    config.executor.circuit_cooldown_ms = 60_000;
    config.executor.circuit_sync_ms = 100;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_can_close_a_circuit_and_every_executor_sees_it_at_once() {
    let mut sandbox = Sandbox::with(SandboxOptions {
        configure: slow_cooldown,
        ..SandboxOptions::default()
    })
    .await;
    sandbox
        .start_service(herald_common::config::ServiceName::Executor)
        .await;
    let tenant = sandbox.tenant().await;
    let other = sandbox.tenant().await;
    let failing = Receiver::start().await;
    failing.fallback(Reply::status(503));
    sandbox
        .action(
            &tenant,
            webhook_action(
                "flaky",
                "job.done",
                &failing.url("/hook"),
                json!({"max_attempts": 1, "delays_s": [1]}),
            ),
        )
        .await;
    for _ in 0..12 {
        sandbox.event(&tenant, json!({"type": "job.done"})).await;
    }
    let open = eventually("the circuit to open", Duration::from_secs(30), || async {
        endpoint(&sandbox, &tenant.key, &failing)
            .await
            .filter(|e| e["state"] == "open")
    })
    .await;
    let id = open["id"].as_str().unwrap();
    assert!(endpoints(&sandbox, &other.key).await.is_empty());
    let reset = format!("/v1/endpoints/{id}/reset");
    let (status, _) = sandbox
        .call(reqwest::Method::POST, &reset, Some(&other.key), None)
        .await;
    assert_eq!(status, 404, "another tenant cannot touch it");

    // The endpoint is back; an operator closes its circuit.
    failing.fallback(Reply::status(200));
    let (status, body) = sandbox
        .call(reqwest::Method::POST, &reset, Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "closed");
    assert_eq!(body["trips"], 0);
    let reset_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Within a second both executors send again (either would otherwise hold these events
    // for the rest of a one-minute cool-down).
    let before = failing.count();
    let mut events = Vec::new();
    for n in 0..10 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "job.done", "data": {"n": n}}))
                .await,
        );
    }
    for event_id in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event_id, 1, Duration::from_secs(20))
            .await;
        assert_eq!(executions[0]["status"], "succeeded", "{}", executions[0]);
    }
    assert_eq!(failing.count(), before + 10);
    assert!(reset_at.elapsed() < Duration::from_secs(20));
    sandbox.stop().await;
}
