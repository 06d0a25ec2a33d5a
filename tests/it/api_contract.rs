//! The API's promises beyond status codes: keys can be listed and revoked, batches refuse an
//! idempotency key they could not honour, every body is read into the contract's errors,
//! creates say where the new thing lives, actions carry the `ETag` that `If-Match` takes, and
//! binary CloudEvents' headers are percent-decoded.

use herald_tests::sandbox::{SandboxOptions, TestTenant};
use herald_tests::{Receiver, Sandbox};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};
use serde_json::{Value, json};

use crate::support::webhook_action;

/// Only ingest: these tests look at answers and what is stored, not at deliveries.
async fn ingest_only() -> Sandbox {
    Sandbox::with(SandboxOptions {
        matcher: false,
        executor: false,
        scheduler: false,
        ..SandboxOptions::default()
    })
    .await
}

/// Sends a request and returns its status, one response header and the JSON body.
async fn send(request: reqwest::RequestBuilder, header: &str) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("ingest reachable");
    let status = response.status().as_u16();
    let value = response
        .headers()
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, body)
}

/// The tenant as the admin sees it, keys included.
async fn tenant_view(sandbox: &Sandbox, tenant: &TestTenant) -> Value {
    let (status, view) = sandbox
        .call(
            Method::GET,
            &format!("/v1/tenants/{}", tenant.id),
            Some(sandbox.admin_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    view
}

fn keys(view: &Value) -> &Vec<Value> {
    view["keys"].as_array().expect("keys listed")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_lists_its_keys_without_secrets_and_a_revoked_one_stops_working() {
    let sandbox = ingest_only().await;
    let tenant = sandbox.tenant().await;
    let admin = sandbox.admin_token();
    let request = sandbox
        .http_request(
            Method::POST,
            &format!("/v1/tenants/{}/keys", tenant.id),
            admin,
        )
        .json(&json!({"name": "ci"}));
    let (status, location, created) = send(request, LOCATION.as_str()).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("the key, once").to_owned();
    let key_id = created["id"].as_str().expect("key id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/tenants/{}/keys/{key_id}", tenant.id).as_str())
    );

    let view = tenant_view(&sandbox, &tenant).await;
    assert_eq!(
        keys(&view).len(),
        2,
        "the sandbox's key and this one: {view}"
    );
    let listed = keys(&view)
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .expect("the new key is listed");
    assert_eq!(listed["name"], "ci");
    assert_eq!(listed["prefix"], created["prefix"]);
    assert!(key.starts_with(listed["prefix"].as_str().expect("prefix")));
    assert!(listed["created_at"].is_string());
    assert!(listed["revoked_at"].is_null());
    let text = view.to_string();
    for secret in [key.as_str(), tenant.key.as_str()] {
        assert!(!text.contains(secret), "a key in the clear: {view}");
    }
    assert!(!text.contains("hash"), "{view}");

    let (status, _) = sandbox
        .call(
            Method::DELETE,
            &format!("/v1/tenants/{}/keys/{key_id}", tenant.id),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let view = tenant_view(&sandbox, &tenant).await;
    let listed = keys(&view)
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .expect("a revoked key stays listed");
    assert!(listed["revoked_at"].is_string(), "{listed}");
    let (status, answer) = sandbox
        .call(Method::GET, "/v1/stats", Some(&key), None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    sandbox.stop().await;
}

/// Nothing stored: the tenant's event listing is empty.
async fn assert_no_events(sandbox: &Sandbox, tenant: &TestTenant) {
    let (status, page) = sandbox
        .call(Method::GET, "/v1/events", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([]), "nothing may be stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_refuse_an_idempotency_key_and_store_nothing() {
    let sandbox = ingest_only().await;
    let tenant = sandbox.tenant().await;
    let cloudevent =
        json!({"specversion": "1.0", "id": "ce-1", "type": "order.paid", "source": "/shop"});
    let cases = [
        (
            "/v1/events/batch",
            "application/json",
            json!([{"id": "b-1", "type": "order.paid"}]),
        ),
        (
            "/v1/events/batch",
            "application/cloudevents-batch+json",
            json!([cloudevent.clone()]),
        ),
        // A CloudEvents batch is a batch on the single-event route too.
        (
            "/v1/events",
            "application/cloudevents-batch+json",
            json!([cloudevent]),
        ),
    ];
    for (path, content_type, body) in cases {
        let request = sandbox
            .http_request(Method::POST, path, &tenant.key)
            .header(CONTENT_TYPE, content_type)
            .header("idempotency-key", "retry-1")
            .body(body.to_string());
        let (status, _, answer) = send(request, "x-none").await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (422, Some("idempotency_key_not_allowed")),
            "{path} {content_type}: {answer}"
        );
        assert!(answer["error"]["message"].is_string());
    }
    assert_no_events(&sandbox, &tenant).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_a_key_answers_body_errors_in_the_contracts_shape_and_stores_nothing() {
    let sandbox = ingest_only().await;
    let tenant = sandbox.tenant().await;
    let path = format!("/v1/tenants/{}/keys", tenant.id);
    let admin = sandbox.admin_token();
    // Past ingest.max_body_bytes (1 MiB by default).
    let oversized = json!({"name": "x".repeat(2 * 1024 * 1024)}).to_string();
    let cases = [
        ("application/json", oversized, 413, "body_too_large"),
        (
            "text/plain",
            json!({"name": "ci"}).to_string(),
            415,
            "unsupported_media_type",
        ),
        ("application/json", "{".to_owned(), 400, "invalid_json"),
    ];
    for (content_type, body, want, code) in cases {
        let request = sandbox
            .http_request(Method::POST, &path, admin)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let (status, answer_type, answer) = send(request, CONTENT_TYPE.as_str()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (want, Some(code)),
            "{content_type}: {answer}"
        );
        assert_eq!(answer_type.as_deref(), Some("application/json"));
    }
    let view = tenant_view(&sandbox, &tenant).await;
    assert_eq!(keys(&view).len(), 1, "only the sandbox's key: {view}");
    // Leaving the body out still makes an unnamed key.
    let (status, created) = sandbox.call(Method::POST, &path, Some(admin), None).await;
    assert_eq!((status, created["name"].as_str()), (201, Some("")));
    sandbox.stop().await;
}

/// Follows a `Location` and expects the resource there.
async fn follow(sandbox: &Sandbox, token: &str, location: Option<String>) -> Value {
    let location = location.expect("a Location header");
    let (status, found) = sandbox
        .call(Method::GET, &location, Some(token), None)
        .await;
    assert_eq!(status, 200, "GET {location}: {found}");
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_say_where_the_new_resource_lives() {
    let sandbox = ingest_only().await;
    let receiver = Receiver::start().await;
    let admin = sandbox.admin_token();

    let request = sandbox
        .http_request(Method::POST, "/v1/tenants", admin)
        .json(&json!({"name": "located"}));
    let (status, location, tenant) = send(request, LOCATION.as_str()).await;
    assert_eq!(status, 201, "{tenant}");
    assert_eq!(follow(&sandbox, admin, location).await["id"], tenant["id"]);

    let tenant = sandbox.tenant().await;
    let request = sandbox
        .http_request(Method::POST, "/v1/providers", &tenant.key)
        .json(&json!({"name": "billing", "scheme": "standard_webhooks",
            "secret": crate::support::SECRET, "event_type": {"field": "type"}}));
    let (status, location, provider) = send(request, LOCATION.as_str()).await;
    assert_eq!(status, 201, "{provider}");
    assert_eq!(
        follow(&sandbox, &tenant.key, location).await["id"],
        provider["id"]
    );

    let request = sandbox
        .http_request(Method::POST, "/v1/deliveries", &tenant.key)
        .json(&json!({"url": receiver.url("/hook"), "payload": {"order": 42}}));
    let (status, location, delivery) = send(request, LOCATION.as_str()).await;
    assert_eq!(status, 202, "{delivery}");
    assert_eq!(
        follow(&sandbox, &tenant.key, location).await["id"],
        delivery["id"],
        "a delivery is followed as its execution"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_carries_the_etag_that_if_match_takes() {
    let sandbox = ingest_only().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let spec = webhook_action("tagged", "order.paid", &receiver.url("/hook"), json!({}));
    let request = sandbox
        .http_request(Method::POST, "/v1/actions", &tenant.key)
        .json(&spec);
    let response = request.send().await.expect("ingest reachable");
    assert_eq!(response.status().as_u16(), 201);
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, created_tag) = (header(LOCATION), header(ETAG));
    let created: Value = response.json().await.expect("JSON");
    let id = created["id"].as_str().expect("action id").to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/actions/{id}").as_str())
    );
    let revision = |action: &Value| format!("\"{}\"", action["revision"]);
    assert_eq!(created_tag, Some(revision(&created)));

    let path = format!("/v1/actions/{id}");
    let (status, tag, shown) = send(
        sandbox.http_request(Method::GET, &path, &tenant.key),
        ETAG.as_str(),
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(tag, created_tag, "unchanged since it was created");

    // What GET gave is what If-Match takes.
    let (status, tag, updated) = send(
        sandbox
            .http_request(Method::PATCH, &path, &tenant.key)
            .header(IF_MATCH, created_tag.clone().expect("an ETag"))
            .json(&json!({"priority": 5})),
        ETAG.as_str(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(tag, Some(revision(&updated)));
    assert_ne!(tag, created_tag);

    // The old one is refused, and the answer says so.
    let (status, _, refused) = send(
        sandbox
            .http_request(Method::PATCH, &path, &tenant.key)
            .header(IF_MATCH, created_tag.expect("an ETag"))
            .json(&json!({"priority": 6})),
        ETAG.as_str(),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (412, Some("revision_mismatch"))
    );
    let (_, now, _) = send(
        sandbox.http_request(Method::GET, &path, &tenant.key),
        ETAG.as_str(),
    )
    .await;
    assert_eq!(now, tag, "the refused change changed nothing");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_cloudevents_headers_are_percent_decoded() {
    let sandbox = ingest_only().await;
    let tenant = sandbox.tenant().await;
    let request = sandbox
        .http_request(Method::POST, "/v1/events", &tenant.key)
        .header("ce-specversion", "1.0")
        .header("ce-id", "pct-1")
        .header("ce-type", "order.paid")
        .header("ce-source", "urn:shop%2Feu%20west")
        .header("ce-subject", "Caf%C3%A9%20%22Z%22%25")
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"amount": 5}"#);
    let (status, _, answer) = send(request, "x-none").await;
    assert_eq!(status, 202, "{answer}");
    let event = sandbox.event_view(&tenant, "pct-1").await;
    assert_eq!(event["source"], "urn:shop/eu west", "{event}");
    assert_eq!(event["metadata"]["subject"], "Café \"Z\"%", "{event}");

    // A bad escape is the sender's error, and nothing is stored.
    let request = sandbox
        .http_request(Method::POST, "/v1/events", &tenant.key)
        .header("ce-specversion", "1.0")
        .header("ce-id", "pct-2")
        .header("ce-type", "order.paid")
        .header("ce-source", "100%")
        .body("");
    let (status, _, answer) = send(request, "x-none").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_cloudevent")),
        "{answer}"
    );
    let (status, _) = sandbox
        .call(Method::GET, "/v1/events/pct-2", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 404);
    sandbox.stop().await;
}
