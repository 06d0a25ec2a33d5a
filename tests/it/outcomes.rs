//! What an attempt's result does to its execution: `Retry-After` honoured, timeouts retried,
//! 410 disabling the action, private destinations refused unless allow-listed.

use std::time::Duration;

use herald_tests::sandbox::SandboxOptions;
use herald_tests::{Receiver, Reply, Sandbox};
use serde_json::json;

use crate::support::{WebhookSetup, webhook_action, webhook_setup};

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_puts_the_next_attempt_at_least_that_late() {
    // Delays of 1 s then 5 s: the policy allows up to 5 s, so `Retry-After: 2` is honoured.
    let retry = json!({"max_attempts": 3, "delays_s": [1, 5]});
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("invoice.paid", retry).await;
    receiver.script([Reply::status(429).with_header("retry-after", "2")]);

    let event_id = sandbox
        .event(&tenant, json!({"type": "invoice.paid", "data": {}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_secs(2), "waited only {gap:?}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_is_retried_and_recorded_as_one() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let mut action = webhook_action(
        "slow",
        "report.ready",
        &receiver.url("/hook"),
        json!({"max_attempts": 3, "delays_s": [1]}),
    );
    action["handler"]["timeout_ms"] = json!(300);
    sandbox.action(&tenant, action).await;
    receiver.script([Reply::status(200).after(Duration::from_secs(2))]);

    let event_id = sandbox
        .event(&tenant, json!({"type": "report.ready", "data": {}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    let attempts = execution["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["error_kind"], "timeout");
    assert_eq!(attempts[0]["outcome"], "retrying");
    assert_eq!(attempts[1]["outcome"], "succeeded");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_fails_at_once_and_disables_the_action() {
    let retry = json!({"max_attempts": 5, "delays_s": [1]});
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("user.deleted", retry).await;
    receiver.fallback(Reply::status(410));
    let event_id = sandbox
        .event(&tenant, json!({"type": "user.deleted", "data": {}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "failed");
    assert_eq!(receiver.count(), 1, "no retry after 410");

    let action_id = executions[0]["action_id"].as_str().unwrap();
    let (status, action) = sandbox
        .call(
            reqwest::Method::GET,
            &format!("/v1/actions/{action_id}"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(action["enabled"], false, "{action}");
    assert!(
        action["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{action}"
    );
    // Disabled: the next event sends nothing (the matchers drop the action within a moment;
    // an execution made before they did is cancelled by the executor).
    let next = sandbox
        .event(&tenant, json!({"type": "user.deleted", "data": {}}))
        .await;
    let view = herald_tests::eventually(
        "the next event to be matched",
        Duration::from_secs(10),
        || async {
            let view = sandbox.event_view(&tenant, &next).await;
            (!view["matched_at"].is_null()).then_some(view)
        },
    )
    .await;
    let started = view["matched_count"].as_u64().unwrap_or(0) as usize;
    for execution in sandbox
        .terminal_executions(&tenant, &next, started, Duration::from_secs(10))
        .await
    {
        assert_eq!(execution["status"], "cancelled", "{execution}");
    }
    assert_eq!(receiver.count(), 1, "nothing more was sent");
    sandbox.stop().await;
}

fn no_private_destinations(config: &mut herald_common::config::Config) {
    config.executor.allow_private_destinations.clear();
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_is_refused_by_default_and_allowed_when_listed() {
    for allowed in [false, true] {
        let options = if allowed {
            SandboxOptions::default()
        } else {
            SandboxOptions {
                configure: no_private_destinations,
                ..SandboxOptions::default()
            }
        };
        let sandbox = Sandbox::with(options).await;
        let receiver = Receiver::start().await;
        let tenant = sandbox.tenant().await;
        sandbox
            .action(
                &tenant,
                webhook_action(
                    "local",
                    "a.b",
                    &receiver.url("/hook"),
                    json!({"max_attempts": 3, "delays_s": [1]}),
                ),
            )
            .await;
        let event_id = sandbox.event(&tenant, json!({"type": "a.b"})).await;
        let executions = sandbox
            .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
            .await;
        if allowed {
            assert_eq!(executions[0]["status"], "succeeded");
            assert_eq!(receiver.count(), 1);
        } else {
            assert_eq!(executions[0]["status"], "failed", "refused for good");
            assert_eq!(receiver.count(), 0, "nothing reached 127.0.0.1");
            let execution = sandbox
                .execution(&tenant, executions[0]["id"].as_str().unwrap())
                .await;
            assert_eq!(
                execution["attempts"][0]["error_kind"], "destination_refused",
                "{execution}"
            );
        }
        sandbox.stop().await;
    }
}
