//! The services survive the broker dropping their connections (as a broker restart or a network
//! fault does): they reconnect, redeclare the topology and carry on, without a restart.

use std::time::Duration;

use herald_tests::eventually;
use serde_json::json;

use crate::support::{WebhookSetup, webhook_setup};

#[tokio::test(flavor = "multi_thread")]
async fn services_reconnect_after_the_broker_drops_them() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("user.created", json!({})).await;
    sandbox
        .event(&tenant, json!({"type": "user.created"}))
        .await;
    eventually("the first webhook", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;

    // One connection per service at least.
    sandbox.drop_broker_connections(4).await;

    // Events sent while the services reconnect are stored and delivered all the same.
    let mut events = Vec::new();
    for n in 0..5 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "user.created", "data": {"n": n}}))
                .await,
        );
    }
    eventually(
        "the webhooks after reconnecting",
        Duration::from_secs(60),
        || async { (receiver.count() == 6).then_some(()) },
    )
    .await;
    for event in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event, 1, Duration::from_secs(20))
            .await;
        assert_eq!(executions[0]["status"], "succeeded");
    }
    sandbox.stop().await;
}
