//! Events published straight to `herald.events` by outside programs, as the contract describes
//! them (routing key = type, body = the event plus `tenant_id`, JSON or MessagePack,
//! `message_id` = the event id, persistent): stored once, delivered once, deduplicated against
//! HTTP events, and parked when they name a tenant that does not exist.

use std::time::Duration;

use herald_common::broker::topology::{
    DEAD_CODE_HEADER, DEAD_QUEUE, DEAD_QUEUE_HEADER, DEAD_REASON_HEADER, EVENTS_EXCHANGE,
    MATCHER_QUEUE,
};
use herald_common::config::ServiceName;
use herald_common::ids::TenantId;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Sandbox, eventually};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    SECRET, WebhookSetup, verify_with_reference_library, webhook_action, webhook_setup,
};

const JSON: &str = "application/json";
const MSGPACK: &str = "application/msgpack";

/// Publishes one event as an outside program would.
async fn publish(channel: &Channel, event: &Value, content_type: &str, message_id: &str) {
    let body = match content_type {
        MSGPACK => rmp_serde::to_vec_named(event).expect("msgpack"),
        _ => event.to_string().into_bytes(),
    };
    let routing_key = event["type"].as_str().expect("a type");
    channel
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_content_type(content_type.into())
                .with_message_id(message_id.into())
                .with_delivery_mode(2),
        )
        .await
        .expect("publish");
}

/// Events the matcher has finished with (matched, recorded, jobs handed on, acknowledged).
async fn matched_events(sandbox: &Sandbox) -> u64 {
    let ops = sandbox.ops_addrs(ServiceName::Matcher)[0];
    let text = sandbox.metrics_text(ops).await;
    text.lines()
        .find(|line| {
            line.starts_with("herald_stage_messages_total{")
                && line.contains(r#"stage="matcher""#)
                && line.contains(r#"direction="out""#)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until the matcher has finished with `count` events in all. Anything it would hand
/// on for them is then on the broker already (it acknowledges only after confirms).
async fn wait_matched(sandbox: &Sandbox, count: u64) {
    eventually(
        &format!("the matcher to finish {count} events"),
        Duration::from_secs(20),
        || async { (matched_events(sandbox).await >= count).then_some(()) },
    )
    .await;
}

/// Webhooks the receiver got for `event_id`, counted only once a later event sent over HTTP
/// has been delivered `sentinel_webhooks` times: a stray job handed on for `event_id` was on
/// the broker before the sentinel's, so it has had its chance to arrive.
async fn webhooks_for(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    receiver: &herald_tests::Receiver,
    event_id: &str,
    sentinel_webhooks: usize,
) -> usize {
    let sentinel = sandbox
        .event(
            tenant,
            json!({"type": "order.paid", "data": {"sentinel": true}}),
        )
        .await;
    let of = |id: &str| {
        receiver
            .received()
            .iter()
            .filter(|w| w.json()["id"] == id)
            .count()
    };
    eventually(
        "the sentinel's webhooks",
        Duration::from_secs(20),
        || async { (of(&sentinel) >= sentinel_webhooks).then_some(()) },
    )
    .await;
    of(event_id)
}

/// The tenant's executions of one event, as the listing shows them.
async fn executions_of(sandbox: &Sandbox, tenant: &TestTenant, event_id: &str) -> Vec<Value> {
    let (status, page) = sandbox
        .call(
            Method::GET,
            &format!("/v1/executions?event_id={event_id}"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn stored_events(sandbox: &Sandbox, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count events")
}

fn header(headers: &Option<FieldTable>, name: &str) -> String {
    match headers.as_ref().and_then(|h| h.inner().get(name)) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("header {name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_msgpack_event_from_the_broker_is_stored_and_delivered_signed() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;
    let channel = sandbox.broker().await;
    let event = json!({
        "tenant_id": tenant.id,
        "type": "order.paid",
        "source": "shop",
        "data": {"amount": 2000, "currency": "usd", "items": [1, 2]},
        "metadata": {"region": "eu"},
    });
    publish(&channel, &event, MSGPACK, "mp-1").await;

    eventually("the webhook", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let received = &receiver.received()[0];
    verify_with_reference_library(received, SECRET).expect("signed");
    let body = received.json();
    assert_eq!(body["id"], "mp-1", "the message id is the event id");
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["source"], "shop");
    assert_eq!(body["data"], event["data"]);
    assert_eq!(body["metadata"], event["metadata"]);

    let stored = sandbox.event_view(&tenant, "mp-1").await;
    assert_eq!(stored["data"], event["data"], "{stored}");
    let executions = stored["executions"].as_array().expect("executions");
    assert_eq!(executions.len(), 1, "{stored}");
    assert_eq!(
        received.header("webhook-id"),
        executions[0]["id"].as_str().expect("id")
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_published_twice_is_stored_once_and_delivered_once() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;
    let channel = sandbox.broker().await;
    let event = json!({"tenant_id": tenant.id, "type": "order.paid", "data": {"n": 1}});

    // Twice at once: the copies may meet in one of the matcher's batches, or not.
    publish(&channel, &event, JSON, "twice-1").await;
    publish(&channel, &event, JSON, "twice-1").await;
    wait_matched(&sandbox, 2).await;
    let executions = sandbox
        .terminal_executions(&tenant, "twice-1", 1, Duration::from_secs(20))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    assert_eq!(executions[0]["attempts"], 1, "{executions:?}");

    // Again once the first was delivered (a publisher resending what it saw no confirm for):
    // the execution has moved on, so nothing is handed to the executors at all.
    publish(&channel, &event, MSGPACK, "twice-1").await;
    wait_matched(&sandbox, 3).await;

    assert_eq!(stored_events(&sandbox, "twice-1").await, 1);
    assert_eq!(executions_of(&sandbox, &tenant, "twice-1").await.len(), 1);
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().expect("id"))
        .await;
    assert_eq!(
        execution["attempts"].as_array().map(Vec::len),
        Some(1),
        "{execution}"
    );
    assert_eq!(
        webhooks_for(&sandbox, &tenant, &receiver, "twice-1", 1).await,
        1,
        "one webhook"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_id_seen_over_http_starts_nothing_when_published_to_the_broker() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;
    let channel = sandbox.broker().await;
    let id = sandbox
        .event(
            &tenant,
            json!({"id": "both-ways", "type": "order.paid", "data": {"via": "http"}}),
        )
        .await;
    assert_eq!(id, "both-ways");
    sandbox
        .terminal_executions(&tenant, &id, 1, Duration::from_secs(20))
        .await;
    wait_matched(&sandbox, 1).await;

    // An action added since would match the copy: it must still start nothing.
    sandbox
        .action(
            &tenant,
            webhook_action("later", "order.#", &receiver.url("/later"), json!({})),
        )
        .await;
    sandbox.event(&tenant, json!({"type": "order.paid"})).await;
    eventually(
        "the new action to be live",
        Duration::from_secs(20),
        || async {
            receiver
                .received()
                .iter()
                .any(|w| w.path == "/later")
                .then_some(())
        },
    )
    .await;
    let event = json!({"tenant_id": tenant.id, "type": "order.paid", "data": {"via": "broker"}});
    publish(&channel, &event, JSON, "both-ways").await;
    wait_matched(&sandbox, 3).await;

    let stored = sandbox.event_view(&tenant, "both-ways").await;
    assert_eq!(
        stored["data"],
        json!({"via": "http"}),
        "the first one stays"
    );
    assert_eq!(stored_events(&sandbox, "both-ways").await, 1);
    assert_eq!(executions_of(&sandbox, &tenant, "both-ways").await.len(), 1);
    assert_eq!(
        webhooks_for(&sandbox, &tenant, &receiver, "both-ways", 2).await,
        1,
        "one webhook"
    );
    assert_eq!(receiver.received()[0].json()["data"]["via"], "http");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_of_a_tenant_that_does_not_exist_is_dead_lettered() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;
    let channel = sandbox.broker().await;
    let nobody = TenantId::new();
    let stray = json!({"tenant_id": nobody.to_string(), "type": "order.paid", "data": {}});
    publish(&channel, &stray, JSON, "stray-1").await;

    let message = sandbox
        .next_message(&channel, DEAD_QUEUE, Duration::from_secs(20))
        .await;
    let headers = message.delivery.properties.headers();
    assert_eq!(header(headers, DEAD_CODE_HEADER), "unknown_tenant");
    assert!(
        header(headers, DEAD_REASON_HEADER).contains(&nobody.to_string()),
        "the reason names the tenant"
    );
    assert_eq!(header(headers, DEAD_QUEUE_HEADER), MATCHER_QUEUE);
    assert_eq!(message.delivery.data, stray.to_string().into_bytes());
    assert_eq!(
        stored_events(&sandbox, "stray-1").await,
        0,
        "nothing stored"
    );

    // A known tenant's event behind it flows as usual.
    let good = json!({"tenant_id": tenant.id, "type": "order.paid", "data": {}});
    publish(&channel, &good, MSGPACK, "good-1").await;
    eventually(
        "the good event's webhook",
        Duration::from_secs(20),
        || async { (receiver.count() == 1).then_some(()) },
    )
    .await;

    // A miss is not remembered: once the tenant exists, its events are taken.
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'late')")
        .bind(nobody)
        .execute(sandbox.store.pool())
        .await
        .expect("create the tenant");
    publish(&channel, &stray, JSON, "stray-2").await;
    eventually(
        "the late tenant's event",
        Duration::from_secs(20),
        || async { (stored_events(&sandbox, "stray-2").await == 1).then_some(()) },
    )
    .await;
    sandbox.stop().await;
}
