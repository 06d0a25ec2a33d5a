//! `http` actions as a user runs them: the request their templates make reaches a local
//! receiver exactly; a template that cannot render fails for good, naming itself; OAuth client
//! credentials are fetched, cached and renewed once after a 401; a test renders without
//! sending; and what could never run is refused when saved, with nothing stored.

use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::verify_with_reference_library;

const CRM_TOKEN: &str = "crm-secret-token-7c1e";

fn http_action(name: &str, handler: Value) -> Value {
    json!({"name": name, "event_types": ["payment.succeeded"], "handler": handler,
           "retry": {"max_attempts": 2, "delays_s": [1]}})
}

/// Sends one event and returns its only execution once it has ended, with its attempts.
async fn run_one(sandbox: &Sandbox, tenant: &TestTenant, data: Value) -> Value {
    let event = sandbox
        .event(tenant, json!({"type": "payment.succeeded", "data": data}))
        .await;
    let executions = sandbox
        .terminal_executions(tenant, &event, 1, Duration::from_secs(30))
        .await;
    let id = executions[0]["id"].as_str().expect("id");
    sandbox.execution(tenant, id).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_action_sends_exactly_the_request_its_templates_render() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.fallback(Reply::status(201).with_body(format!("echo {CRM_TOKEN}")));
    let tenant = sandbox.tenant().await;
    sandbox.put_secret(&tenant, "crm_token", CRM_TOKEN).await;
    let created = sandbox
        .action(
            &tenant,
            http_action(
                "crm-note",
                json!({"type": "http", "method": "PUT",
                       "url": receiver.url("/customers/{{ event.data.customer_id }}/notes"),
                       "query": {"source": "herald", "attempt": "{{ execution.attempt }}"},
                       "headers": {"x-event": "{{ event.type }}",
                                   "authorization": "Bearer {{ secrets.crm_token }}"},
                       "body": {"text": "Paid {{ event.data.amount / 100 }} {{ event.data.currency | upper }}",
                                "amount": "{{ event.data.amount }}",
                                "customer": "{{ event.data.customer }}",
                                "tags": ["billing"]},
                       "success_codes": [200, 201]}),
            ),
        )
        .await;
    assert_eq!(created["handler"]["headers"]["authorization"], "***");

    let execution = run_one(
        &sandbox,
        &tenant,
        json!({"customer_id": "c/42", "amount": 1250, "currency": "eur",
               "customer": {"name": "Ann", "plan": "pro"}}),
    )
    .await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(
        request.path, "/customers/c%2F42/notes",
        "a value cannot reshape the path"
    );
    assert_eq!(request.query, "attempt=1&source=herald");
    assert_eq!(request.header("x-event"), "payment.succeeded");
    assert_eq!(
        request.header("authorization"),
        format!("Bearer {CRM_TOKEN}")
    );
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.json(),
        json!({"text": "Paid 12.5 EUR", "amount": 1250,
               "customer": {"name": "Ann", "plan": "pro"}, "tags": ["billing"]})
    );
    // The receiver echoed the secret: the record of the attempt does not hold it.
    let attempt = &execution["attempts"][0];
    assert_eq!(attempt["response_status"], 201);
    assert!(!execution.to_string().contains(CRM_TOKEN), "{execution}");
    assert_eq!(attempt["response_body"], "echo ***");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_that_cannot_render_fails_for_good_naming_it() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            http_action(
                "missing-value",
                json!({"type": "http", "url": receiver.url("/x"),
                       "body": {"customer": "{{ event.data.customer.name }}"}}),
            ),
        )
        .await;
    let execution = run_one(&sandbox, &tenant, json!({"amount": 1})).await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "no retry of what renders the same: {execution}"
    );
    assert_eq!(attempts[0]["error_kind"], "template");
    let message = attempts[0]["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("handler.body.customer:") && message.contains("event.data.customer"),
        "{message}"
    );

    // A secret deleted after the action was saved: a clear, permanent error at render.
    sandbox.put_secret(&tenant, "gone_soon", "v").await;
    let mut action = http_action(
        "uses-a-secret",
        json!({"type": "http", "url": receiver.url("/y"),
               "headers": {"x-api-key": "{{ secrets.gone_soon }}"}}),
    );
    action["event_types"] = json!(["secret.used"]);
    sandbox.action(&tenant, action).await;
    let (status, _) = sandbox
        .call(
            Method::DELETE,
            "/v1/secrets/gone_soon",
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 204);
    // The executor reads secrets at most a second old.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let event = sandbox.event(&tenant, json!({"type": "secret.used"})).await;
    let executions = sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["status"], "failed");
    let message = execution["attempts"][0]["error_message"].as_str().unwrap();
    assert!(
        message.contains("handler.headers.x-api-key")
            && message.contains("\"gone_soon\" does not exist"),
        "{message}"
    );
    assert_eq!(receiver.count(), 0, "nothing was sent");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn saving_refuses_what_could_never_run_and_stores_nothing() {
    let sandbox = Sandbox::with(herald_tests::SandboxOptions {
        matcher: false,
        executor: false,
        scheduler: false,
        ..Default::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let email = |extra: Value| {
        let mut handler = json!({"type": "email", "from": "a@example.com",
            "to": ["b@example.com"], "subject": "s", "text": "t"});
        for (k, v) in extra.as_object().unwrap() {
            handler[k] = v.clone();
        }
        handler
    };
    let cases = [
        (
            json!({"type": "http", "url": "https://{{ event.data.host }}/x"}),
            "handler.url",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x", "method": "TRACE"}),
            "handler.method",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x",
                "auth": {"type": "digest"}}),
            "handler.auth.type",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x",
                "body": {"a": "{{ event.data. }}"}}),
            "handler.body.a",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x",
                "headers": {"x-key": "{{ secrets.never_stored }}"}}),
            "handler.headers.x-key",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x", "colour": 1}),
            "handler.colour",
        ),
        (
            json!({"type": "http", "url": "https://api.example.com/x", "timeout_ms": "soon"}),
            "handler.timeout_ms",
        ),
        (email(json!({})), "handler.smtp"),
        (
            email(json!({"to": ["not an address"],
                      "smtp": {"host": "smtp.example.com"}})),
            "handler.to[0]",
        ),
        (
            email(json!({"smtp": {"host": "smtp.example.com", "security": "ssl3"}})),
            "handler.smtp.security",
        ),
        (
            email(json!({"smtp": {"host": "{{ event.data.host }}"}})),
            "handler.smtp.host",
        ),
        (
            email(json!({"subject": "{% if %}", "smtp": {"host": "smtp.example.com"}})),
            "handler.subject",
        ),
    ];
    for (handler, field) in cases {
        let (status, error) = sandbox
            .try_action(&tenant, http_action("refused", handler.clone()))
            .await;
        assert_eq!(status, 422, "{handler}: {error}");
        assert_eq!(error["error"]["code"], "invalid_action", "{handler}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{handler}: {message}");
    }
    let (status, set) = sandbox
        .call(
            Method::PUT,
            "/v1/actions",
            Some(&tenant.key),
            Some(json!({"actions": [
                http_action("fine", json!({"type": "log"})),
                http_action("bad", json!({"type": "http", "url": "https://api.example.com/x",
                    "auth": {"type": "bearer", "token": "{{ secrets.nope }}"}}))]})),
        )
        .await;
    assert_eq!(status, 422, "{set}");
    assert!(
        set["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("actions[1].handler.auth.token"),
        "{set}"
    );
    let (_, listed) = sandbox
        .call(Method::GET, "/v1/actions", Some(&tenant.key), None)
        .await;
    assert_eq!(listed["data"], json!([]), "nothing half-stored");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oauth_tokens_are_fetched_cached_and_renewed_once_after_a_401() {
    let sandbox = Sandbox::start().await;
    let api = Receiver::start().await;
    let auth = Receiver::start().await;
    let token = |token: &str| {
        Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body(
                json!({"access_token": token, "token_type": "Bearer",
                              "expires_in": 3600})
                .to_string(),
            )
    };
    auth.script([token("tok-1"), token("tok-2")]);
    api.script([Reply::status(200), Reply::status(200), Reply::status(401)]);
    let tenant = sandbox.tenant().await;
    sandbox
        .put_secret(&tenant, "crm_client_secret", "client-secret-9")
        .await;
    sandbox
        .action(
            &tenant,
            http_action(
                "oauth",
                json!({"type": "http", "url": api.url("/notes"), "body": {"n": "{{ event.data.n }}"},
                       "auth": {"type": "oauth2_client_credentials", "token_url": auth.url("/token"),
                                "client_id": "herald", "client_secret": "{{ secrets.crm_client_secret }}",
                                "scope": "notes:write"}}),
            ),
        )
        .await;
    for n in 1..=3 {
        let execution = run_one(&sandbox, &tenant, json!({"n": n})).await;
        assert_eq!(execution["status"], "succeeded", "{execution}");
    }
    let calls: Vec<String> = api
        .received()
        .iter()
        .map(|r| r.header("authorization").to_owned())
        .collect();
    assert_eq!(
        calls,
        [
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-1",
            "Bearer tok-2"
        ],
        "one token for the first two, renewed once after the 401"
    );
    let token_requests = auth.received();
    assert_eq!(token_requests.len(), 2);
    let first = &token_requests[0];
    assert_eq!(first.method, "POST");
    let form = String::from_utf8_lossy(&first.body).into_owned();
    assert!(
        form.contains("grant_type=client_credentials") && form.contains("scope=notes%3Awrite"),
        "{form}"
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("herald:client-secret-9");
    assert_eq!(first.header("authorization"), format!("Basic {basic}"));

    // A token endpoint that refuses the credentials fails the attempt for good.
    auth.script([Reply::status(401)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error": "invalid_client", "error_description": "unknown client"}"#)]);
    sandbox
        .put_secret(&tenant, "crm_client_secret", "changed")
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let execution = run_one(&sandbox, &tenant, json!({"n": 4})).await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let attempt = &execution["attempts"][0];
    assert_eq!(attempt["error_kind"], "auth");
    let message = attempt["error_message"].as_str().unwrap();
    assert!(
        message.contains("401") && message.contains("invalid_client"),
        "{message}"
    );
    assert_eq!(execution["attempts"].as_array().unwrap().len(), 1);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_renders_the_request_without_sending_it_or_sends_it_once() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox.put_secret(&tenant, "crm_token", CRM_TOKEN).await;
    let action = sandbox
        .action(
            &tenant,
            http_action(
                "preview",
                json!({"type": "http", "url": receiver.url("/c/{{ event.data.id }}"),
                       "headers": {"authorization": "Bearer {{ secrets.crm_token }}",
                                   "x-note": "token {{ secrets.crm_token }}"},
                       "body": {"amount": "{{ event.data.amount }}"}}),
            ),
        )
        .await;
    let path = format!("/v1/actions/{}/test", action["id"].as_str().unwrap());
    let event = json!({"type": "payment.succeeded", "data": {"id": 7, "amount": 3}});
    let (status, report) = sandbox
        .call(
            Method::POST,
            &path,
            Some(&tenant.key),
            Some(json!({"event": event})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let request = &report["rendered"]["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], receiver.url("/c/7"));
    assert_eq!(request["headers"]["authorization"], "***");
    assert_eq!(request["headers"]["x-note"], "token ***");
    assert_eq!(request["body"], r#"{"amount":3}"#);
    assert!(!report.to_string().contains(CRM_TOKEN), "{report}");
    assert_eq!(receiver.count(), 0, "a test renders without sending");

    let broken = json!({"type": "payment.succeeded", "data": {"amount": 3}});
    let (_, report) = sandbox
        .call(
            Method::POST,
            &path,
            Some(&tenant.key),
            Some(json!({"event": broken})),
        )
        .await;
    assert_eq!(report["render_error"]["field"], "handler.url", "{report}");

    let (status, report) = sandbox
        .call(
            Method::POST,
            &path,
            Some(&tenant.key),
            Some(json!({"event": event, "send": true})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivery"]["outcome"], "succeeded", "{report}");
    let received = eventually("the test request", Duration::from_secs(10), || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(
        received.header("authorization"),
        format!("Bearer {CRM_TOKEN}")
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_may_replace_its_envelope_with_a_body_template_still_signed() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let secret = crate::support::SECRET;
    sandbox
        .action(
            &tenant,
            http_action(
                "slim-webhook",
                json!({"type": "webhook", "url": receiver.url("/hook"), "secret": secret,
                       "body": {"kind": "{{ event.type }}", "cents": "{{ event.data.amount }}"}}),
            ),
        )
        .await;
    let execution = run_one(&sandbox, &tenant, json!({"amount": 990})).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let received = &receiver.received()[0];
    assert_eq!(
        received.json(),
        json!({"kind": "payment.succeeded", "cents": 990})
    );
    verify_with_reference_library(received, secret).expect("the rendered body is signed");
    sandbox.stop().await;
}
