//! The `http` handler as actions give it: checked with errors naming the field, stored and
//! read back as itself, shown with credentials masked, and rendered into the exact request.

use std::time::Duration;

use chrono::Utc;
use herald_common::event::{EventLimits, IncomingEvent};
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;
use serde_json::{Value, json};

use crate::handler::Handler;
use crate::{Context, Outbound, parse_action};

fn action(handler: Value) -> Value {
    json!({"name": "crm", "event_types": ["payment.succeeded"], "handler": handler})
}

fn http(extra: Value) -> Value {
    let mut handler = json!({"type": "http", "url": "https://api.example.com/notes"});
    for (k, v) in extra.as_object().expect("an object") {
        handler[k] = v.clone();
    }
    action(handler)
}

fn handler(extra: Value) -> Handler {
    parse_action(&http(extra))
        .unwrap_or_else(|e| panic!("{e}"))
        .handler
}

#[test]
fn a_stored_http_handler_reads_back_as_itself() {
    let examples = [
        json!({}),
        json!({"method": "PATCH", "url": "https://api.example.com/c/{{ event.data.id }}/notes",
               "query": {"source": "herald", "n": "{{ execution.attempt }}"},
               "headers": {"x-event": "{{ event.type }}", "authorization": "Bearer {{ secrets.crm }}"},
               "body": {"text": "Paid {{ event.data.amount }}", "amount": "{{ event.data.amount }}"},
               "success_codes": [200, 201], "timeout_ms": 3000}),
        json!({"body": "To={{ event.data.to }}", "content_type": "text/plain"}),
        json!({"form": {"To": "{{ event.data.to }}", "Body": "hi"},
               "auth": {"type": "basic", "username": "AC1", "password": "{{ secrets.twilio }}"}}),
        json!({"auth": {"type": "oauth2_client_credentials", "token_url": "https://auth.example.com/token",
                        "client_id": "herald", "client_secret": "{{ secrets.crm_client }}",
                        "scope": "notes:write", "client_auth": "body"}}),
        json!({"sign": true, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    ];
    for extra in examples {
        let spec = parse_action(&http(extra.clone())).unwrap_or_else(|e| panic!("{extra}: {e}"));
        let stored = serde_json::to_value(&spec).unwrap();
        let again = parse_action(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(again, spec, "{stored}");
        let loaded: Handler = serde_json::from_value(stored["handler"].clone()).unwrap();
        assert_eq!(loaded, spec.handler, "read back from the database");
        assert_eq!(
            spec.handler.destination(),
            Some("https://api.example.com:443")
        );
    }
}

#[test]
fn errors_name_the_offending_field() {
    let cases = [
        (
            json!({"url": "https://{{ event.data.host }}/x"}),
            "handler.url",
        ),
        (
            json!({"url": "https://api.example.com{{ event.data.path }}"}),
            "handler.url",
        ),
        (
            json!({"url": "https://api.example.com:{{ event.data.port }}/x"}),
            "handler.url",
        ),
        (
            json!({"url": "ftp://api.example.com/{{ event.id }}"}),
            "handler.url",
        ),
        (json!({"url": 5}), "handler.url"),
        (json!({"method": "TRACE"}), "handler.method"),
        (json!({"method": "GET", "body": {"a": 1}}), "handler.body"),
        (
            json!({"method": "HEAD", "form": {"a": "1"}}),
            "handler.form",
        ),
        (
            json!({"body": {"a": "{{ event.data. }}"}}),
            "handler.body.a",
        ),
        (json!({"body": ["x", "{% if %}"]}), "handler.body[1]"),
        (json!({"body": 5}), "handler.body"),
        (json!({"body": {}, "form": {}}), "handler.form"),
        (
            json!({"content_type": "text/plain"}),
            "handler.content_type",
        ),
        (json!({"form": {"a": 1}}), "handler.form.a"),
        (
            json!({"headers": {"x-a": "{{ evnt.type }}"}}),
            "handler.headers.x-a",
        ),
        (json!({"query": {"a": 1}}), "handler.query.a"),
        (json!({"query": "a=1"}), "handler.query"),
        (json!({"auth": {"type": "digest"}}), "handler.auth.type"),
        (json!({"auth": {"token": "x"}}), "handler.auth.type"),
        (json!({"auth": {"type": "bearer"}}), "handler.auth.token"),
        (
            json!({"auth": {"type": "bearer", "token": "t", "extra": 1}}),
            "handler.auth.extra",
        ),
        (
            json!({"auth": {"type": "basic", "username": "u"}}),
            "handler.auth.password",
        ),
        (
            json!({"auth": {"type": "oauth2_client_credentials", "client_id": "a",
                         "client_secret": "b"}}),
            "handler.auth.token_url",
        ),
        (
            json!({"auth": {"type": "oauth2_client_credentials", "token_url": "https://a/{{ x }}",
                         "client_id": "a", "client_secret": "b"}}),
            "handler.auth.token_url",
        ),
        (
            json!({"auth": {"type": "oauth2_client_credentials", "token_url": "https://a/t",
                         "client_id": "a", "client_secret": "b", "client_auth": "jwt"}}),
            "handler.auth.client_auth",
        ),
        (
            json!({"auth": {"type": "bearer", "token": "t"}, "headers": {"authorization": "x"}}),
            "handler.headers.authorization",
        ),
        (json!({"success_codes": []}), "handler.success_codes"),
        (json!({"success_codes": [700]}), "handler.success_codes"),
        (json!({"sign": "yes"}), "handler.sign"),
        (
            json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "handler.secret",
        ),
        (json!({"sign": true, "secret": "nope"}), "handler.secret"),
        (json!({"timeout_ms": 99}), "handler.timeout_ms"),
        (json!({"colour": "blue"}), "handler.colour"),
        (
            json!({"headers": {"x-a": "{{ secrets }}"}}),
            "handler.headers.x-a",
        ),
    ];
    for (extra, field) in cases {
        let error = parse_action(&http(extra.clone())).unwrap_err();
        assert_eq!(error.field, field, "{extra}: {error}");
    }
}

#[test]
fn reads_mask_credentials_and_a_read_written_back_keeps_them() {
    let stored = handler(json!({
        "headers": {"x-api-key": "k-123", "x-team": "billing"},
        "auth": {"type": "oauth2_client_credentials", "token_url": "https://auth.example.com/t",
                 "client_id": "herald", "client_secret": "cs-456"}}));
    let shown = stored.view(false);
    assert_eq!(shown["type"], "http");
    assert_eq!(shown["headers"]["x-api-key"], "***");
    assert_eq!(shown["headers"]["x-team"], "billing");
    assert_eq!(shown["auth"]["client_secret"], "***");
    assert_eq!(shown["auth"]["client_id"], "herald");
    assert!(!shown.to_string().contains("k-123") && !shown.to_string().contains("cs-456"));

    let mut written: Handler = {
        let Value::Object(mut fields) = shown.clone() else {
            unreachable!()
        };
        fields.insert("timeout_ms".into(), json!(2000));
        parse_action(&action(Value::Object(fields)))
            .unwrap()
            .handler
    };
    herald_common::action::HandlerSpec::keep_stored(&mut written, Some(&stored)).unwrap();
    let back = serde_json::to_value(&written).unwrap();
    assert_eq!(back["auth"]["client_secret"], "cs-456");
    assert_eq!(back["headers"]["x-api-key"], "k-123");
    assert_eq!(back["timeout_ms"], 2000);

    let mut orphan = handler(json!({"auth": {"type": "bearer", "token": "***"}}));
    let error = herald_common::action::HandlerSpec::keep_stored(&mut orphan, None).unwrap_err();
    assert_eq!(error.field, "handler.auth.token");
    assert!(!format!("{stored:?}").contains("cs-456"));
}

fn job() -> ExecutionJob {
    let incoming: IncomingEvent = serde_json::from_value(json!({
        "id": "evt_1", "type": "payment.succeeded",
        "data": {"id": "c/42", "amount": 1250, "to": "+15550100", "user": {"plan": "pro"}}}))
    .unwrap();
    let event = incoming
        .validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
        .unwrap();
    ExecutionJob {
        step: None,
        execution_id: ExecutionId::new(),
        tenant_id: event.tenant_id,
        action_id: ActionId::new(),
        attempt: 1,
        event,
    }
}

/// The request `extra` would send for [`job`], rendered and not sent.
fn prepared(extra: Value) -> crate::http::Prepared {
    let Handler::Http(spec) = handler(extra) else {
        unreachable!("an http handler")
    };
    let outbound = Outbound::new(&[], Duration::from_secs(1), 1024).unwrap();
    let secrets = SecretValues(
        [
            ("crm".to_owned(), "crm-token-1".to_owned()),
            ("twilio".to_owned(), "tw-secret".to_owned()),
        ]
        .into(),
    );
    let job = job();
    let ctx = Context {
        job: &job,
        now: Utc::now(),
        action_name: "crm",
        secrets: &secrets,
        outbound: &outbound,
        publisher: None,
        steps: None,
    };
    crate::http::prepare(&spec, &ctx).unwrap_or_else(|e| panic!("{e}"))
}

fn header<'a>(request: &'a crate::transport::Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_request_is_rendered_from_its_templates() {
    let prepared = prepared(json!({
        "method": "PUT",
        "url": "https://api.example.com/customers/{{ event.data.id }}/notes",
        "query": {"source": "herald", "amount": "{{ event.data.amount }}"},
        "headers": {"x-event": "{{ event.type }}", "authorization": "Bearer {{ secrets.crm }}"},
        "body": {"text": "Paid {{ event.data.amount / 100 }}", "amount": "{{ event.data.amount }}",
                 "user": "{{ event.data.user }}"}}));
    let request = &prepared.request;
    assert_eq!(request.method.as_str(), "PUT");
    assert_eq!(
        request.url.as_str(),
        "https://api.example.com/customers/c%2F42/notes?amount=1250&source=herald"
    );
    assert_eq!(header(request, "x-event"), Some("payment.succeeded"));
    assert_eq!(header(request, "authorization"), Some("Bearer crm-token-1"));
    assert_eq!(header(request, "content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"text": "Paid 12.5", "amount": 1250, "user": {"plan": "pro"}})
    );
    assert!(prepared.credentials.iter().any(|c| c == "crm-token-1"));
    let shown = request.preview(
        &prepared
            .credentials
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(shown["headers"]["authorization"], "***");
    assert!(!shown.to_string().contains("crm-token-1"), "{shown}");
}

#[test]
fn forms_basic_auth_and_signing() {
    let prepared = prepared(json!({
        "form": {"To": "{{ event.data.to }}", "Body": "Paid & done"},
        "auth": {"type": "basic", "username": "AC1", "password": "{{ secrets.twilio }}"},
        "sign": true, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}));
    let request = &prepared.request;
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        "Body=Paid+%26+done&To=%2B15550100"
    );
    assert_eq!(
        header(request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("AC1:tw-secret");
    assert_eq!(
        header(request, "authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let key = crate::signing::Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let timestamp: i64 = header(request, "webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!(crate::signing::verify(
        key.key(),
        header(request, "webhook-signature").unwrap(),
        header(request, "webhook-id").unwrap(),
        timestamp,
        &request.body
    ));
}
