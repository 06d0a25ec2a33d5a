//! A message no consumer can use is parked in `herald.dead` with its reason, never retried
//! forever, and the queue behind it keeps flowing.

use std::time::Duration;

use herald_common::broker::topology::{
    DEAD_CODE_HEADER, DEAD_QUEUE, DEAD_REASON_HEADER, EVENTS_EXCHANGE,
};
use herald_tests::eventually;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::json;

use crate::support::{WebhookSetup, webhook_setup};

fn header(headers: &Option<FieldTable>, name: &str) -> String {
    match headers.as_ref().and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_messages_are_dead_lettered_with_their_reason() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("user.created", json!({})).await;
    let channel = sandbox.broker().await;

    let cases: [(&[u8], BasicProperties, &str); 4] = [
        (
            b"\x93\x01",
            BasicProperties::default().with_type("herald.event_batch.v99".into()),
            "unsupported_version",
        ),
        (
            b"\xc1garbage",
            BasicProperties::default().with_type("herald.event_batch.v1".into()),
            "corrupt_body",
        ),
        (
            b"{not json",
            BasicProperties::default().with_content_type("application/json".into()),
            "corrupt_body",
        ),
        (
            br#"{"type": "user.created"}"#,
            BasicProperties::default(),
            "missing_tenant_id",
        ),
    ];
    for (body, properties, _) in &cases {
        channel
            .basic_publish(
                EVENTS_EXCHANGE.into(),
                "user.created".into(),
                BasicPublishOptions::default(),
                body,
                properties.clone(),
            )
            .await
            .expect("publish");
    }
    // The matcher works on several messages at once, so they may be parked in any order: match
    // each parked message to its case by the original body, which must be kept.
    let mut parked = Vec::new();
    for _ in &cases {
        let message = sandbox
            .next_message(&channel, DEAD_QUEUE, Duration::from_secs(20))
            .await;
        let headers = message.delivery.properties.headers();
        assert!(!header(headers, DEAD_REASON_HEADER).is_empty());
        parked.push((
            message.delivery.data.clone(),
            header(headers, DEAD_CODE_HEADER),
        ));
    }
    parked.sort();
    let mut expected: Vec<(Vec<u8>, String)> = cases
        .iter()
        .map(|(body, _, code)| (body.to_vec(), code.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        parked, expected,
        "each body is parked whole with its own reason"
    );

    // The queue was not blocked: a good event behind the bad ones is delivered.
    let event = json!({"type": "user.created", "tenant_id": tenant.id, "data": {"ok": true}});
    channel
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "user.created".into(),
            BasicPublishOptions::default(),
            event.to_string().as_bytes(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id("outside-1".into()),
        )
        .await
        .expect("publish");
    eventually(
        "the good event's webhook",
        Duration::from_secs(20),
        || async { (receiver.count() == 1).then_some(()) },
    )
    .await;
    let stored = sandbox.event_view(&tenant, "outside-1").await;
    assert_eq!(stored["type"], "user.created");
    sandbox.stop().await;
}
