//! An event becomes a delivered, signed webhook.

use std::time::Duration;

use base64::Engine;
use herald_tests::{Sandbox, eventually};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::support::{SECRET, WebhookSetup, verify_with_reference_library, webhook_setup};

#[tokio::test(flavor = "multi_thread")]
async fn an_event_becomes_a_signed_webhook() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("payment_intent.succeeded", json!({})).await;

    let event_id = sandbox
        .event(
            &tenant,
            json!({"type": "payment_intent.succeeded", "source": "stripe", "data": {"amount": 2000, "currency": "usd"},
                   "metadata": {"region": "eu"}}),
        )
        .await;

    eventually("the webhook", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let webhook = &receiver.received()[0];
    assert_eq!(webhook.path, "/hook");
    assert_eq!(webhook.header("content-type"), "application/json");
    assert!(webhook.header("user-agent").starts_with("herald/"));
    let body = webhook.json();
    assert_eq!(body["id"], json!(event_id));
    assert_eq!(body["type"], "payment_intent.succeeded");
    assert_eq!(body["source"], "stripe");
    assert_eq!(body["data"], json!({"amount": 2000, "currency": "usd"}));
    assert_eq!(body["metadata"], json!({"region": "eu"}));

    // The signature, checked by hand from the specification...
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let signed = format!(
        "{}.{}.",
        webhook.header("webhook-id"),
        webhook.header("webhook-timestamp")
    );
    mac.update(signed.as_bytes());
    mac.update(&webhook.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(webhook.header("webhook-signature"), expected);
    // ...and by the reference library.
    verify_with_reference_library(webhook, SECRET)
        .expect("the reference library accepts the signature");

    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(10))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    assert_eq!(
        executions[0]["id"],
        json!(webhook.header("webhook-id")),
        "webhook-id is the execution id"
    );
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(execution["attempts"][0]["response_status"], 200);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_a_secret_rotates_each_delivery_verifies_with_either() {
    let sandbox = Sandbox::start().await;
    let receiver = herald_tests::Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let new_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let mut action = crate::support::webhook_action(
        "rotating",
        "key.rotated",
        &receiver.url("/hook"),
        json!({}),
    );
    action["handler"]["secrets"] = json!([new_secret, SECRET]);
    action["handler"].as_object_mut().unwrap().remove("secret");
    sandbox.action(&tenant, action).await;
    for n in 0..3 {
        sandbox
            .event(&tenant, json!({"type": "key.rotated", "data": {"n": n}}))
            .await;
    }
    eventually("the webhooks", Duration::from_secs(20), || async {
        (receiver.count() == 3).then_some(())
    })
    .await;
    for webhook in receiver.received() {
        assert_eq!(webhook.header("webhook-signature").split(' ').count(), 2);
        for secret in [new_secret, SECRET] {
            verify_with_reference_library(&webhook, secret)
                .unwrap_or_else(|e| panic!("{secret} does not verify: {e}"));
        }
        let traceparent = webhook.header("traceparent");
        assert_eq!(traceparent.split('-').count(), 4, "{traceparent}");
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_matching_nothing_is_recorded_as_such() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let event_id = sandbox
        .event(&tenant, json!({"type": "nobody.listens"}))
        .await;
    let event = eventually(
        "the event to be matched",
        Duration::from_secs(20),
        || async {
            let event = sandbox.event_view(&tenant, &event_id).await;
            (!event["matched_at"].is_null()).then_some(event)
        },
    )
    .await;
    assert_eq!(event["matched_count"], 0);
    assert_eq!(event["executions"], json!([]));
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_id_or_idempotency_key_starts_nothing_new() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;

    let first = sandbox
        .event(&tenant, json!({"id": "order-1", "type": "order.paid"}))
        .await;
    let (status, again) = sandbox
        .call(
            reqwest::Method::POST,
            "/v1/events",
            Some(&tenant.key),
            Some(json!({"id": "order-1", "type": "order.paid"})),
        )
        .await;
    assert_eq!(
        (status, &again),
        (202, &json!({"id": first, "duplicate": true}))
    );

    let keyed = send_with_key(&sandbox, &tenant.key, "k-1").await;
    assert_eq!(keyed["duplicate"], false);
    let repeat = send_with_key(&sandbox, &tenant.key, "k-1").await;
    assert_eq!(repeat, json!({"id": keyed["id"], "duplicate": true}));

    eventually("two webhooks", Duration::from_secs(20), || async {
        (receiver.count() >= 2).then_some(())
    })
    .await;
    sandbox
        .terminal_executions(&tenant, &first, 1, Duration::from_secs(10))
        .await;
    assert_eq!(receiver.count(), 2, "duplicates are not delivered");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_precise_error_and_stores_nothing() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let cases = [
        (json!({"data": {}}), 422, "missing_event_type"),
        (json!({"type": "a..b"}), 422, "invalid_event_type"),
        (
            json!({"type": "a", "metadata": {"n": 1}}),
            422,
            "invalid_metadata",
        ),
        (json!({"type": "a", "time": "noon"}), 422, "invalid_time"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = sandbox
            .call(
                reqwest::Method::POST,
                "/v1/events",
                Some(&tenant.key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
    }
    let (status, answer) = sandbox
        .call(
            reqwest::Method::POST,
            "/v1/events",
            Some("hk_wrong"),
            Some(json!({"type": "a"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str().unwrap()),
        (401, "unauthorized")
    );
    let raw = sandbox
        .http
        .post(format!("{}/v1/events", sandbox.api.as_deref().unwrap()))
        .bearer_auth(&tenant.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let answer: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_json");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(sandbox.store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    sandbox.stop().await;
}

/// Sends an `order.paid` event with an `Idempotency-Key` header and returns the answer.
async fn send_with_key(sandbox: &Sandbox, key: &str, idempotency_key: &str) -> serde_json::Value {
    sandbox
        .http
        .post(format!("{}/v1/events", sandbox.api.as_deref().unwrap()))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .json(&json!({"type": "order.paid"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
