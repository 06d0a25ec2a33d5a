//! Handler types besides webhooks: `publish` chains actions through new events (and stops a
//! loop), `log` writes the event to the executor's log.

use std::time::Duration;

use herald_tests::{Receiver, Sandbox, eventually};
use serde_json::json;

use crate::support::webhook_action;

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_action_chains_into_the_next_action() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            json!({"name": "chain", "event_types": ["order.placed"],
                   "handler": {"type": "publish", "event_type": "order.chained"}}),
        )
        .await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "after-chain",
                "order.chained",
                &receiver.url("/hook"),
                json!({"max_attempts": 2, "delays_s": [1]}),
            ),
        )
        .await;
    let event_id = sandbox
        .event(
            &tenant,
            json!({"type": "order.placed", "source": "shop", "data": {"total": 42}}),
        )
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let received = eventually("the chained webhook", Duration::from_secs(30), || async {
        receiver.received().into_iter().next()
    })
    .await;
    let body = received.json();
    assert_eq!(body["type"], "order.chained");
    assert_eq!(body["source"], "shop");
    assert_eq!(body["data"], json!({"total": 42}));
    assert_eq!(body["metadata"]["herald_chain_depth"], "1");
    assert_eq!(body["metadata"]["herald_parent_event"], event_id.as_str());
    // The chained event's id is the publishing execution's: stored once, however often the
    // attempt is repeated.
    assert_eq!(body["id"], executions[0]["id"]);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_loop_stops_at_the_chain_depth() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            json!({"name": "loop", "event_types": ["ping.pong"],
                   "retry": {"max_attempts": 1, "delays_s": [1]},
                   "handler": {"type": "publish", "event_type": "ping.pong"}}),
        )
        .await;
    sandbox.event(&tenant, json!({"type": "ping.pong"})).await;
    let failed: (String, Option<String>) = eventually(
        "the loop to be stopped",
        Duration::from_secs(60),
        || async {
            sqlx::query_as(
                "SELECT e.status, a.error_kind FROM executions e
                 JOIN attempts a ON a.execution_id = e.id WHERE e.status = 'failed'",
            )
            .fetch_optional(sandbox.store.pool())
            .await
            .expect("query")
        },
    )
    .await;
    assert_eq!(failed.1.as_deref(), Some("chain_too_deep"));
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM executions WHERE status = 'succeeded'")
            .fetch_one(sandbox.store.pool())
            .await
            .unwrap();
    assert_eq!(succeeded, 8, "eight hops, then the ninth is refused");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_action_succeeds_without_a_destination() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            json!({"name": "trace", "event_types": ["#"], "handler": {"type": "log"}}),
        )
        .await;
    let event_id = sandbox
        .event(
            &tenant,
            json!({"type": "anything.at.all", "data": {"k": "v"}}),
        )
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["attempts"][0]["request_url"], "log");
    sandbox.stop().await;
}
