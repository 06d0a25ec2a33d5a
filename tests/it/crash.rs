//! An executor killed mid-delivery loses nothing: the broker redelivers its unacknowledged job
//! and another executor sends the webhook again with the same id.

use std::time::Duration;

use herald_tests::process::ServiceProcess;
use herald_tests::{Receiver, Reply, Sandbox, SandboxOptions, eventually};
use serde_json::json;

use crate::support::webhook_action;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_executor_loses_no_delivery() {
    let sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    // The first request hangs, so the executor is surely mid-delivery when it dies.
    receiver.script([Reply::status(200).after(Duration::from_secs(60))]);
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("a", "order.shipped", &receiver.url("/"), json!({})),
        )
        .await;

    let mut first = ServiceProcess::spawn("herald-executor", &sandbox.env());
    let event_id = sandbox
        .event(&tenant, json!({"type": "order.shipped"}))
        .await;
    eventually(
        "the first delivery to start",
        Duration::from_secs(30),
        || async { (receiver.count() == 1).then_some(()) },
    )
    .await;
    // An attempt that runs long is marked `processing` (a fast one goes straight to its
    // outcome).
    eventually(
        "the attempt to show as processing",
        Duration::from_secs(10),
        || async {
            let event = sandbox.event_view(&tenant, &event_id).await;
            (event["executions"][0]["status"] == "processing").then_some(())
        },
    )
    .await;
    first.kill_hard().await;

    let _second = ServiceProcess::spawn("herald-executor", &sandbox.env());
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let received = receiver.received();
    assert_eq!(received.len(), 2, "delivered again after the crash");
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    assert_eq!(
        received[1].header("webhook-id"),
        executions[0]["id"].as_str().unwrap()
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_executor_mid_stream_repeats_only_what_was_in_flight() {
    let sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    // Slow enough that many attempts are in flight at any moment.
    receiver.fallback(Reply::status(200).after(Duration::from_millis(200)));
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("a", "order.packed", &receiver.url("/"), json!({})),
        )
        .await;
    let mut first = ServiceProcess::spawn("herald-executor", &sandbox.env());
    let mut events = Vec::new();
    for n in 0..200 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "order.packed", "data": {"n": n}}))
                .await,
        );
    }
    eventually(
        "deliveries to be under way",
        Duration::from_secs(30),
        || async { (receiver.count() >= 50).then_some(()) },
    )
    .await;
    first.kill_hard().await;
    let killed_at = std::time::Instant::now();

    let _second = ServiceProcess::spawn("herald-executor", &sandbox.env());
    for event_id in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event_id, 1, Duration::from_secs(60))
            .await;
        assert_eq!(executions[0]["status"], "succeeded", "{}", executions[0]);
    }
    let mut by_id: std::collections::HashMap<String, Vec<std::time::Instant>> =
        std::collections::HashMap::new();
    for received in receiver.received() {
        by_id
            .entry(received.header("webhook-id").to_owned())
            .or_default()
            .push(received.at);
    }
    assert_eq!(by_id.len(), 200, "every execution delivered");
    let repeated: Vec<_> = by_id.values().filter(|at| at.len() > 1).collect();
    for arrivals in &repeated {
        assert!(
            arrivals[0] < killed_at,
            "a repeat is of an attempt that was under way when the executor died"
        );
    }
    eprintln!(
        "killed mid-stream: {} of 200 executions delivered twice (same webhook-id)",
        repeated.len()
    );
    sandbox.stop().await;
}
