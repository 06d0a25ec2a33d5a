//! Bad input on the management routes, class by class: each answers its precise status and
//! code in the contract's error shape, and nothing is stored. And the per-tenant request rate.

use herald_tests::sandbox::SandboxOptions;
use herald_tests::{Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

/// Rows in `table` of this sandbox's database (the other event-input tests use it too).
pub(crate) async fn count(sandbox: &Sandbox, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count")
}

/// Sends a raw body with a content type; returns the status and error code.
async fn raw(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (u16, String) {
    let response = sandbox
        .http_request(method, path, token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("ingest");
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        answer["error"]["code"]
            .as_str()
            .unwrap_or("<no error body>")
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_every_route_class_is_answered_precisely_and_stores_nothing() {
    // A small body limit: a body just over it fits the socket buffers, so the client finishes
    // sending before the 413 closes the connection (a 2 MiB one could be cut off mid-send).
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| config.ingest.max_body_bytes = 16 * 1024,
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let admin = sandbox.admin_token();
    let (tenants_before, keys_before) = (
        count(&sandbox, "tenants").await,
        count(&sandbox, "api_keys").await,
    );
    let hook = json!({"type": "webhook", "url": "https://example.com/hook"});
    let action = |patch: Value| {
        let mut spec = json!({"name": "a", "event_types": ["order.paid"], "handler": hook});
        for (key, value) in patch.as_object().expect("object") {
            spec[key] = value.clone();
        }
        spec
    };
    let big_metadata: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v"))).collect();
    // (method, path, token, body, status, code)
    let cases: Vec<(Method, String, &str, Value, u16, &str)> = vec![
        // Text PostgreSQL cannot store is refused, not a failed insert.
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"name": "a\u{0}b"})),
            422,
            "nul_character",
        ),
        (
            Method::POST,
            "/v1/tenants".into(),
            admin,
            json!({"name": "t\u{0}"}),
            422,
            "nul_character",
        ),
        // Actions: every invalid field is a 422 naming it.
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            json!({"event_types": ["x"], "handler": hook}),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"event_types": ["a..b"]})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"conditions": [{"path": "data.x", "op": "in", "value": 3}]})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"conditions": [{"path": "data.x", "op": "matches", "value": "("}]})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"handler": {"type": "email"}})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"handler": {"type": "webhook", "url": "https://x", "secret": "plain"}})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"priority": "urgent"})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"retry": {"delays_s": [-1]}})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            action(json!({"mode": "later"})),
            422,
            "invalid_action",
        ),
        (
            Method::POST,
            "/v1/actions".into(),
            &tenant.key,
            json!(["not", "an", "object"]),
            422,
            "invalid_action",
        ),
        // Events: metadata over its limit.
        (
            Method::POST,
            "/v1/events".into(),
            &tenant.key,
            json!({"type": "a", "metadata": big_metadata}),
            413,
            "metadata_too_large",
        ),
        // Executions, stats: filters and windows.
        (
            Method::GET,
            "/v1/executions?status=lost".into(),
            &tenant.key,
            Value::Null,
            422,
            "invalid_parameter",
        ),
        (
            Method::GET,
            "/v1/executions?limit=5000".into(),
            &tenant.key,
            Value::Null,
            422,
            "invalid_parameter",
        ),
        (
            Method::GET,
            "/v1/executions?cursor=zzz".into(),
            &tenant.key,
            Value::Null,
            422,
            "invalid_parameter",
        ),
        (
            Method::GET,
            "/v1/stats?since=yesterday".into(),
            &tenant.key,
            Value::Null,
            422,
            "invalid_parameter",
        ),
        (
            Method::GET,
            "/v1/stats?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z".into(),
            &tenant.key,
            Value::Null,
            422,
            "invalid_parameter",
        ),
        (
            Method::POST,
            "/v1/executions/retry".into(),
            &tenant.key,
            json!({"status": "pending"}),
            422,
            "invalid_parameter",
        ),
        (
            Method::POST,
            "/v1/executions/retry".into(),
            &tenant.key,
            json!({"since": "soon"}),
            422,
            "invalid_parameter",
        ),
        (
            Method::POST,
            "/v1/executions/retry".into(),
            &tenant.key,
            json!({"colour": "red"}),
            400,
            "invalid_json",
        ),
        // Unknown ids.
        (
            Method::POST,
            "/v1/endpoints/end_unknown/reset".into(),
            &tenant.key,
            Value::Null,
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/bulk-retries/blk_unknown".into(),
            &tenant.key,
            Value::Null,
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/v1/executions/exe_unknown/retry".into(),
            &tenant.key,
            Value::Null,
            404,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/events/never-sent".into(),
            &tenant.key,
            Value::Null,
            404,
            "not_found",
        ),
        // Tenants and keys.
        (
            Method::POST,
            "/v1/tenants".into(),
            admin,
            json!({"name": " "}),
            422,
            "invalid_name",
        ),
        (
            Method::POST,
            "/v1/tenants".into(),
            admin,
            json!({"title": "x"}),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/v1/tenants/ten_unknown/keys".into(),
            admin,
            Value::Null,
            404,
            "not_found",
        ),
        (
            Method::POST,
            format!("/v1/tenants/{}/keys", tenant.id),
            admin,
            json!({"name": 5}),
            400,
            "invalid_json",
        ),
        (
            Method::DELETE,
            format!("/v1/tenants/{}/keys/key_unknown", tenant.id),
            admin,
            Value::Null,
            404,
            "not_found",
        ),
        // Routes and methods that do not exist.
        (
            Method::GET,
            "/v1/nothing".into(),
            &tenant.key,
            Value::Null,
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/events".into(),
            &tenant.key,
            Value::Null,
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (got, answer) = sandbox
            .call(method.clone(), &path, Some(token), body.clone())
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:?}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }

    // Bodies that are not JSON, not the right media type, or too large.
    let oversized = format!("{{\"name\": \"{}\"}}", "x".repeat(20 * 1024));
    for (path, content_type, body, status, code) in [
        (
            "/v1/actions",
            "application/json",
            "{not json".to_owned(),
            400,
            "invalid_json",
        ),
        (
            "/v1/actions",
            "text/plain",
            "name=a".to_owned(),
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/actions",
            "application/json",
            oversized.clone(),
            413,
            "body_too_large",
        ),
        (
            "/v1/events",
            "text/plain",
            "hello".to_owned(),
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/events",
            "application/json",
            oversized,
            413,
            "body_too_large",
        ),
        (
            "/v1/deliveries",
            "application/xml",
            "<x/>".to_owned(),
            415,
            "unsupported_media_type",
        ),
    ] {
        let got = raw(
            &sandbox,
            Method::POST,
            path,
            &tenant.key,
            content_type,
            body,
        )
        .await;
        assert_eq!(got, (status, code.to_owned()), "{path} as {content_type}");
    }

    for table in [
        "actions",
        "events",
        "executions",
        "bulk_retries",
        "providers",
    ] {
        assert_eq!(count(&sandbox, table).await, 0, "{table}: nothing stored");
    }
    assert_eq!(count(&sandbox, "tenants").await, tenants_before);
    assert_eq!(count(&sandbox, "api_keys").await, keys_before);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_over_its_request_rate_is_told_when_to_come_back() {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| {
            config.ingest.tenant_rate_per_s = 2;
            config.ingest.tenant_burst = 5;
        },
        ..SandboxOptions::default()
    })
    .await;
    let busy = sandbox.tenant().await;
    let quiet = sandbox.tenant().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = sandbox
            .http_request(Method::GET, "/v1/stats", &busy.key)
            .send()
            .await
            .expect("ingest");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=1).contains(&wait), "Retry-After {wait}");
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(
        &statuses[..5],
        &[200; 5],
        "the burst goes through: {statuses:?}"
    );
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // Another tenant has a bucket of its own.
    let (status, _) = sandbox
        .call(Method::GET, "/v1/stats", Some(&quiet.key), None)
        .await;
    assert_eq!(status, 200);
    // Soon after the Retry-After (1 s) the tenant is let in again; a refused request spends no
    // token, so asking meanwhile does not push the time back.
    eventually(
        "the tenant let in again",
        std::time::Duration::from_secs(5),
        || async {
            let (status, _) = sandbox
                .call(Method::GET, "/v1/stats", Some(&busy.key), None)
                .await;
            (status == 200).then_some(())
        },
    )
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_over_the_tenant_rate_are_refused_in_the_contract_shape_and_not_stored() {
    // One token a second and a burst of three: ten requests sent one after another go past
    // the burst unless the machine takes seven seconds to send them.
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| {
            config.ingest.tenant_rate_per_s = 1;
            config.ingest.tenant_burst = 3;
        },
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let before = count(&sandbox, "events").await;
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for n in 0..10 {
        let id = format!("rate-{n}");
        let response = sandbox
            .http_request(Method::POST, "/v1/events", &tenant.key)
            .json(&json!({"id": id, "type": "order.paid"}))
            .send()
            .await
            .expect("ingest");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            202 => {
                assert_eq!(answer, json!({"id": id, "duplicate": false}));
                accepted.push(id);
            }
            429 => {
                assert_eq!(
                    retry_after.as_deref(),
                    Some("1"),
                    "{id}: whole seconds until the next token"
                );
                let error = answer["error"].as_object().expect("an error object");
                assert_eq!(
                    (answer.as_object().map(|a| a.len()), error.len()),
                    (Some(1), 2),
                    "{id}: only the contract's error shape: {answer}"
                );
                assert_eq!(error["code"], "rate_limited", "{id}: {answer}");
                assert!(error["message"].is_string(), "{id}: {answer}");
                refused.push(id);
            }
            other => panic!("{id}: unexpected {other}: {answer}"),
        }
    }
    assert_eq!(
        accepted[..3],
        ["rate-0", "rate-1", "rate-2"],
        "the burst goes through"
    );
    assert!(!refused.is_empty(), "past the burst: {accepted:?}");
    // The accepted events, and only they, are stored.
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(sandbox.store.pool())
        .await
        .expect("stored ids");
    assert_eq!(before, 0);
    assert_eq!(stored, accepted, "refused: {refused:?}");
    sandbox.stop().await;
}
