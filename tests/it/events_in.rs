//! Events in every form: CloudEvents from an independent SDK in structured, binary and batch
//! mode, and Herald's own batches, stored whole or not at all.

use std::time::Duration;

use herald_common::clock::ManualClock;
use herald_tests::{Receiver, Sandbox, SandboxOptions, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_input::count;
use crate::support::{run_python, webhook_action};

/// Sends CloudEvents of `event_type` with the CloudEvents Python SDK; one result per request.
fn send_with_sdk(api: &str, key: &str, event_type: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/send_cloudevents.py");
    let output = run_python(script, &json!({"api": api, "key": key, "type": event_type}));
    assert!(
        output.status.success(),
        "the CloudEvents script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON result line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudevents_from_the_reference_sdk_are_accepted_in_every_mode() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "hook",
                "com.example.order.paid",
                &receiver.url("/"),
                json!({}),
            ),
        )
        .await;
    let api = sandbox.api.clone().expect("ingest runs");
    let (key, event_type) = (tenant.key.clone(), "com.example.order.paid");
    let results = tokio::task::spawn_blocking(move || send_with_sdk(&api, &key, event_type))
        .await
        .expect("the SDK ran");
    assert_eq!(results.len(), 3);
    for result in &results {
        assert_eq!(result["status"], 202, "{result}");
    }
    assert_eq!(
        results[0]["body"],
        json!({"id": "ce-structured", "duplicate": false})
    );
    assert_eq!(
        results[1]["body"],
        json!({"id": "ce-binary", "duplicate": false})
    );
    assert_eq!(
        results[2]["body"]["data"],
        json!([{"id": "ce-batch-0", "duplicate": false}, {"id": "ce-batch-1", "duplicate": false}])
    );

    eventually("four webhooks", Duration::from_secs(30), || async {
        (receiver.count() == 4).then_some(())
    })
    .await;
    let mut by_id: Vec<(String, Value)> = receiver
        .received()
        .iter()
        .map(|r| {
            let body = r.json();
            (body["id"].as_str().unwrap_or("").to_owned(), body)
        })
        .collect();
    by_id.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&str> = by_id.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["ce-batch-0", "ce-batch-1", "ce-binary", "ce-structured"]
    );
    let binary = &by_id[2].1;
    assert_eq!(binary["type"], "com.example.order.paid");
    assert_eq!(binary["source"], "/sdk-test");
    assert_eq!(binary["data"], json!({"mode": "binary"}));
    assert_eq!(
        binary["metadata"]["region"], "eu",
        "extensions become metadata"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_stored_whole_or_not_at_all() {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| config.ingest.max_batch_events = 3,
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let post = |body: Value| {
        let (sandbox, key) = (&sandbox, tenant.key.clone());
        async move {
            sandbox
                .call(Method::POST, "/v1/events/batch", Some(&key), Some(body))
                .await
        }
    };

    // One bad event refuses the batch, naming it; the good one is not stored either.
    let (status, body) = post(json!([
        {"id": "b-1", "type": "order.paid"},
        {"id": "b-2", "type": "bad..type"},
    ]))
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_event_type");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("events[1]"),
        "{body}"
    );
    let (status, _) = sandbox
        .call(Method::GET, "/v1/events/b-1", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 404, "nothing of a refused batch is stored");

    let batch = json!([{"id": "b-1", "type": "order.paid"}, {"id": "b-2", "type": "order.paid"}]);
    let (status, body) = post(batch.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["data"],
        json!([{"id": "b-1", "duplicate": false}, {"id": "b-2", "duplicate": false}])
    );
    let (status, body) = post(batch).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"][1], json!({"id": "b-2", "duplicate": true}));

    // Refused batches store nothing: the two events above stay the only ones (no action
    // exists here, so no execution could follow from a stored one).
    let stored = count(&sandbox, "events").await;
    assert_eq!(stored, 2);
    for (batch, status, code) in [
        (json!([]), 422, "empty_batch"),
        (
            json!([{"type": "a"}, {"type": "a"}, {"type": "a"}, {"type": "a"}]),
            413,
            "batch_too_large",
        ),
        (
            json!([{"type": "a", "tenant_id": "x"}]),
            422,
            "tenant_id_not_allowed",
        ),
        (json!({"type": "a"}), 400, "invalid_json"),
    ] {
        let (got, body) = post(batch.clone()).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{batch}: {body}"
        );
        assert_eq!(
            count(&sandbox, "events").await,
            stored,
            "{batch}: nothing stored"
        );
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_accepted_while_the_broker_refuses_them_are_delivered_later() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut sandbox = Sandbox::with(SandboxOptions {
        scheduler: false,
        ..SandboxOptions::default()
    })
    .await;
    sandbox.start_scheduler_on(clock.clone()).await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;

    // The outage: nothing may be published to herald.events (new channels see it at once).
    sandbox
        .set_broker_write_permission(r"^(?!herald\.events$).*")
        .await;
    sandbox.drop_broker_connections(4).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            sandbox
                .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
                .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        receiver.count(),
        0,
        "nothing reached the matcher during the outage"
    );
    for id in &ids {
        let event = sandbox.event_view(&tenant, id).await;
        assert_eq!(event["matched_at"], Value::Null, "{event}");
    }

    // The broker takes events again; the outbox sweep sends what was accepted meanwhile once
    // it has waited 30 s for the matcher (the test moves the scheduler's clock instead).
    sandbox.set_broker_write_permission(".*").await;
    clock.advance(chrono::Duration::seconds(31));
    eventually(
        "every accepted event delivered",
        Duration::from_secs(60),
        || async { (receiver.count() == 5).then_some(()) },
    )
    .await;
    for id in &ids {
        let executions = sandbox
            .terminal_executions(&tenant, id, 1, Duration::from_secs(20))
            .await;
        assert_eq!(executions[0]["status"], "succeeded");
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_listed_by_type_source_and_time_a_page_at_a_time() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let other = sandbox.tenant().await;
    let batch = json!([
        {"id": "l-1", "type": "invoice.paid", "source": "billing"},
        {"id": "l-2", "type": "invoice.voided", "source": "billing"},
        {"id": "l.3", "type": "user.created", "source": "crm"},
        {"id": "l-4", "type": "invoice_paid", "source": "billing"},
    ]);
    let (status, body) = sandbox
        .call(
            Method::POST,
            "/v1/events/batch",
            Some(&tenant.key),
            Some(batch),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let list = |query: &str, key: &str| {
        let (sandbox, path, key) = (&sandbox, format!("/v1/events{query}"), key.to_owned());
        async move { sandbox.call(Method::GET, &path, Some(&key), None).await }
    };
    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    // Filters: an exact type, a prefix (its `_` is no wildcard), a source.
    let cases = [
        ("?type=invoice.paid", vec!["l-1"]),
        ("?type=invoice.*", vec!["l-1", "l-2"]),
        ("?source=crm", vec!["l.3"]),
        ("?type=invoice.*&source=crm", vec![]),
    ];
    for (query, expected) in cases {
        let (status, body) = list(query, &tenant.key).await;
        assert_eq!(status, 200, "{query}: {body}");
        let mut got = ids(&body);
        got.sort();
        assert_eq!(got, expected, "{query}");
    }

    // Paging walks every event once, newest first, and ends with no cursor.
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let (status, body) = list(&query, &tenant.key).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(ids(&body));
        match body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["l-1", "l-2", "l-4", "l.3"]);

    // A tenant sees its own events only.
    let (status, body) = list("", &other.key).await;
    assert_eq!(status, 200, "{body}");
    assert!(ids(&body).is_empty(), "{body}");

    // Bad input is named.
    for (query, parameter) in [
        ("?limit=0", "limit"),
        ("?cursor=nonsense", "cursor"),
        ("?since=yesterday", "since"),
        (
            "?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "until",
        ),
        ("?colour=red", "colour"),
    ] {
        let (status, body) = list(query, &tenant.key).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(parameter),
            "{query}: {body}"
        );
    }
}
