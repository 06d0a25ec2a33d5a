//! One-off deliveries: a signed webhook to a URL given in the request, at `scheduled_at`,
//! matching no action, idempotent by key.

use std::time::Duration;

use chrono::Utc;
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::json;

use crate::support::{SECRET, verify_with_reference_library, webhook_action};

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_delivery_is_sent_at_its_time_signed_and_matches_nothing() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let bystander = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    // An action listening to the delivery's type must not fire: a delivery is not an event.
    sandbox
        .action(
            &tenant,
            webhook_action("bystander", "delivery", &bystander.url("/"), json!({})),
        )
        .await;

    let scheduled_at = Utc::now() + chrono::Duration::seconds(2);
    let request = json!({
        "url": receiver.url("/hook"),
        "payload": {"order": 42},
        "headers": {"x-correlation": "abc"},
        "secret": SECRET,
        "max_attempts": 3,
        "scheduled_at": scheduled_at.to_rfc3339(),
        "idempotency_key": "order-42",
    });
    let (status, created) = sandbox
        .call(
            Method::POST,
            "/v1/deliveries",
            Some(&tenant.key),
            Some(request.clone()),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["duplicate"], false);
    let id = created["id"].as_str().expect("execution id").to_owned();

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.count(), 0, "not before its time");
    assert_eq!(sandbox.execution(&tenant, &id).await["status"], "pending");

    eventually("the delivery", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let arrived = Utc::now();
    assert!(arrived >= scheduled_at, "arrived before scheduled_at");
    let received = &receiver.received()[0];
    assert_eq!(received.header("webhook-id"), id);
    assert_eq!(received.header("x-correlation"), "abc");
    assert_eq!(received.json()["data"], json!({"order": 42}));
    assert_eq!(received.json()["type"], "delivery");
    verify_with_reference_library(received, SECRET).expect("signature verifies");
    eventually(
        "the execution to succeed",
        Duration::from_secs(10),
        || async {
            let execution = sandbox.execution(&tenant, &id).await;
            (execution["status"] == "succeeded").then_some(())
        },
    )
    .await;

    // The same key again: the first delivery's id, and nothing sent.
    let (status, again) = sandbox
        .call(
            Method::POST,
            "/v1/deliveries",
            Some(&tenant.key),
            Some(request),
        )
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(bystander.count(), 0, "no action matched the delivery");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_delivery_is_refused_naming_its_field_and_stores_nothing() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let later = (Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    let cases = [
        (json!({"payload": {}}), 400, "invalid_json", "url"),
        (
            json!({"url": "https://example.com/"}),
            400,
            "invalid_json",
            "payload",
        ),
        (
            json!({"url": "ftp://example.com/", "payload": {}}),
            422,
            "invalid_delivery",
            "url",
        ),
        (
            json!({"url": "https://example.com/", "payload": {}, "max_attempts": 0}),
            422,
            "invalid_delivery",
            "max_attempts",
        ),
        (
            json!({"url": "https://example.com/", "payload": {}, "secret": "hunter2"}),
            422,
            "invalid_delivery",
            "secret",
        ),
        (
            json!({"url": "https://example.com/", "payload": {}, "scheduled_at": "tomorrow"}),
            422,
            "invalid_delivery",
            "scheduled_at",
        ),
        (
            json!({"url": "https://example.com/", "payload": {}, "scheduled_at": later}),
            422,
            "invalid_delivery",
            "scheduled_at",
        ),
        (
            json!({"url": "https://example.com/", "payload": {}, "colour": "blue"}),
            400,
            "invalid_json",
            "colour",
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = sandbox
            .call(
                Method::POST,
                "/v1/deliveries",
                Some(&tenant.key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{body}: {message}");
    }
    for table in ["events", "executions", "actions", "delayed_jobs"] {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(sandbox.store.pool())
            .await
            .expect("count");
        assert_eq!(rows, 0, "{table}");
    }
    sandbox.stop().await;
}
