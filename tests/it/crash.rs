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
