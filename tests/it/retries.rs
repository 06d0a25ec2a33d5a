//! Retryable failures are tried again through the scheduler, with the same webhook id, until
//! they succeed or the attempts run out.

use std::time::Duration;

use herald_common::broker::topology::FAILED_QUEUE;
use herald_common::messages::{ExecutionFailed, Message};
use herald_tests::{Reply, eventually};
use serde_json::json;

use crate::support::{WebhookSetup, webhook_setup};

#[tokio::test(flavor = "multi_thread")]
async fn a_server_error_is_retried_with_the_same_webhook_id() {
    let retry = json!({"max_attempts": 3, "delays_s": [1]});
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("invoice.paid", retry).await;
    receiver.script([Reply::status(500)]);

    let event_id = sandbox
        .event(&tenant, json!({"type": "invoice.paid", "data": {"n": 1}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");

    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    assert_eq!(
        received[0].body, received[1].body,
        "a retry sends the same payload"
    );
    let gap = received[1].at - received[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "the retry waited its delay ({gap:?})"
    );

    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    let attempts = execution["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["response_status"], 500);
    assert_eq!(attempts[0]["error_kind"], "http_status");
    assert_eq!(attempts[1]["response_status"], 200);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_fails_when_its_attempts_run_out() {
    let retry = json!({"max_attempts": 3, "delays_s": [1]});
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("invoice.paid", retry).await;
    receiver.fallback(Reply::status(503));

    let event_id = sandbox
        .event(&tenant, json!({"type": "invoice.paid"}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "failed");
    assert_eq!(receiver.count(), 3);
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["attempts"].as_array().unwrap().len(), 3);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_error_fails_at_once_and_is_published_as_failed() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("invoice.paid", json!({})).await;
    receiver.fallback(Reply::status(404));

    let event_id = sandbox
        .event(&tenant, json!({"type": "invoice.paid"}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(20))
        .await;
    assert_eq!(executions[0]["status"], "failed");
    assert_eq!(executions[0]["attempts"], 1, "one attempt, no retry");
    // Nothing else arrives: the failure was final.
    eventually("the single attempt", Duration::from_secs(5), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;

    // The failed execution is also on `herald.failed`, for whoever acts on dead letters.
    let channel = sandbox.broker().await;
    let message = sandbox
        .next_message(&channel, FAILED_QUEUE, Duration::from_secs(10))
        .await;
    let kind = message
        .delivery
        .properties
        .kind()
        .as_ref()
        .map(|k| k.as_str().to_owned());
    let failed = ExecutionFailed::decode(kind.as_deref(), &message.delivery.data).unwrap();
    assert_eq!(
        failed.execution_id.to_string(),
        executions[0]["id"].as_str().unwrap()
    );
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.error_kind.as_deref(), Some("http_status"));
    assert_eq!(failed.error.as_deref(), Some("HTTP 404"));
    sandbox.stop().await;
}
