//! Handlers as actions give them: parsed with errors naming the field, stored and read back as
//! themselves, shown with credentials masked, and written back keeping what was stored.

use herald_common::action::HandlerSpec;
use serde_json::{Value, json};

use super::*;
use crate::log::{LogLevel, LogSpec};
use crate::transport::Method;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn base() -> Value {
    json!({
        "name": "notify-billing",
        "event_types": ["payment_intent.succeeded", "invoice.*"],
        "handler": {"type": "webhook", "url": "https://example.com/hook", "secret": SECRET}
    })
}

fn with_handler(handler: Value) -> Value {
    let mut v = base();
    v["handler"] = handler;
    v
}

fn webhook(extra: Value) -> Value {
    let mut handler = json!({"type": "webhook", "url": "https://x"});
    for (k, v) in extra.as_object().expect("an object") {
        handler[k] = v.clone();
    }
    with_handler(handler)
}

#[test]
fn a_stored_action_reads_back_as_itself() {
    // PATCH and `PUT /v1/actions` edit an action's JSON as stored and parse it again; the
    // database holds the handler as serde writes it.
    let examples = [
        with_handler(json!({"type": "webhook", "url": "https://example.com/hook",
            "method": "PUT", "headers": {"x-a": "b"}, "timeout_ms": 1000,
            "secrets": [SECRET, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx"]})),
        with_handler(json!({"type": "log", "level": "warn"})),
        with_handler(json!({"type": "publish", "event_type": "x.y"})),
        with_handler(json!({"type": "publish", "event_type": "x.y", "source": "s"})),
    ];
    for example in examples {
        let spec = parse_action(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
        let stored = serde_json::to_value(&spec).unwrap();
        let again = parse_action(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(again, spec, "{stored}");
        let loaded: Handler = serde_json::from_value(stored["handler"].clone()).unwrap();
        assert_eq!(loaded, spec.handler, "read back from the database");
    }
}

#[test]
fn a_webhook_is_typed_from_the_start() {
    let spec = parse_action(&webhook(json!({"method": "patch", "secret": SECRET,
                                            "headers": {"X-Team": "billing"}})))
    .unwrap();
    let hook = spec.handler.webhook().unwrap();
    assert_eq!(hook.url.as_str(), "https://x/");
    assert_eq!(hook.method, Method::Patch);
    assert_eq!(hook.headers["x-team"], "billing", "names are lowercased");
    assert_eq!(hook.endpoint, "https://x:443");
    assert_eq!(spec.handler.destination(), Some("https://x:443"));
    assert_eq!(hook.secrets[0].text(), SECRET);
}

#[test]
fn defaults_follow_the_contract() {
    let spec = parse_action(&webhook(json!({}))).unwrap();
    let hook = spec.handler.webhook().unwrap();
    assert_eq!(hook.method, Method::Post);
    assert_eq!(hook.timeout_ms, 15_000);
    assert_eq!(
        hook.secrets.len(),
        1,
        "a secret is generated when none is given"
    );
    assert!(hook.secrets[0].text().starts_with("whsec_"));
    let log = parse_action(&with_handler(json!({"type": "log"}))).unwrap();
    assert_eq!(
        log.handler,
        Handler::Log(LogSpec {
            level: LogLevel::Info
        })
    );
}

#[test]
fn errors_name_the_offending_field() {
    let cases = [
        (
            with_handler(json!({"type": "carrier-pigeon"})),
            "handler.type",
        ),
        (with_handler(json!({"url": "https://x"})), "handler.type"),
        (with_handler(json!([])), "handler"),
        (webhook(json!({"url": "ftp://x"})), "handler.url"),
        (webhook(json!({"url": "https://u:p@x"})), "handler.url"),
        (webhook(json!({"secret": "nope"})), "handler.secret"),
        (webhook(json!({"secrets": ["nope"]})), "handler.secrets[0]"),
        (
            webhook(json!({"secrets": [SECRET, SECRET, SECRET, SECRET, SECRET, SECRET]})),
            "handler.secrets",
        ),
        (webhook(json!({"method": "GET"})), "handler.method"),
        // Past what the HTTP client, DNS or a receiver can take: refused at save rather
        // than failed at every attempt.
        (
            webhook(json!({"url": format!("https://x/{}", "p".repeat(8192))})),
            "handler.url",
        ),
        (
            webhook(json!({"url": format!("https://{}.com/", "a".repeat(64))})),
            "handler.url",
        ),
        (
            webhook(
                json!({"headers": (0..65).map(|i| (format!("x-h{i}"), json!("v")))
                .collect::<serde_json::Map<_, _>>()}),
            ),
            "handler.headers",
        ),
        (
            webhook(json!({"headers": {"x-big": "v".repeat(8193)}})),
            "handler.headers.x-big",
        ),
        (
            webhook(json!({"headers": {"webhook-id": "x"}})),
            "handler.headers.webhook-id",
        ),
        (
            webhook(json!({"headers": {"x-a": "b\r\nx-b: c"}})),
            "handler.headers.x-a",
        ),
        (
            webhook(json!({"headers": {"bad name": "v"}})),
            "handler.headers.bad name",
        ),
        (webhook(json!({"timeout_ms": 5})), "handler.timeout_ms"),
        (webhook(json!({"colour": "blue"})), "handler.colour"),
        (
            with_handler(json!({"type": "publish"})),
            "handler.event_type",
        ),
        (
            with_handler(json!({"type": "publish", "event_type": "a..b"})),
            "handler.event_type",
        ),
        (
            with_handler(json!({"type": "publish", "event_type": "a.b", "source": ""})),
            "handler.source",
        ),
        (
            with_handler(json!({"type": "publish", "event_type": "a.b", "url": "https://x"})),
            "handler.url",
        ),
        (
            with_handler(json!({"type": "log", "level": "debug"})),
            "handler.level",
        ),
    ];
    for (value, field) in cases {
        let err = parse_action(&value).unwrap_err();
        assert_eq!(err.field, field, "{value}: {err}");
    }
}

#[test]
fn a_stored_secret_that_no_longer_decodes_fails_the_load() {
    let stored = json!({"type": "webhook", "url": "https://x/", "method": "POST",
                        "headers": {}, "timeout_ms": 1000, "secrets": ["whsec_broken!"]});
    let error = serde_json::from_value::<Handler>(stored).unwrap_err();
    assert!(error.to_string().contains("secrets"), "{error}");
}

#[test]
fn views_mask_credentials_and_secrets() {
    let spec = parse_action(&webhook(json!({"secret": SECRET,
        "headers": {"authorization": "Bearer s3cret", "x-api-key": "k", "x-team": "billing"}})))
    .unwrap();
    let shown = spec.handler.view(false);
    assert_eq!(shown["headers"]["authorization"], "***");
    assert_eq!(shown["headers"]["x-api-key"], "***");
    assert_eq!(shown["headers"]["x-team"], "billing");
    assert_eq!(shown["secrets"], json!(["whsec_…LaSw"]));
    assert!(!shown.to_string().contains("s3cret"));
    assert_eq!(spec.handler.view(true)["secrets"], json!([SECRET]));
    assert_eq!(shown["type"], "webhook");
    for handler in [
        json!({"type": "log", "level": "warn"}),
        json!({"type": "publish", "event_type": "a.b"}),
    ] {
        let spec = parse_action(&with_handler(handler.clone())).unwrap();
        assert_eq!(spec.handler.view(false), handler);
    }
}

#[test]
fn a_write_keeps_what_it_left_to_the_stored_handler() {
    let stored = parse_action(&webhook(json!({"secret": SECRET,
        "headers": {"authorization": "Bearer s3cret", "x-team": "billing"}})))
    .unwrap()
    .handler;
    // What a read showed, written back: the secret left out, the credential masked.
    let mut written = parse_action(&webhook(json!({
        "headers": {"authorization": "***", "x-team": "sales"}})))
    .unwrap()
    .handler;
    written.keep_stored(Some(&stored)).unwrap();
    let hook = written.webhook().unwrap();
    assert_eq!(hook.headers["authorization"], "Bearer s3cret");
    assert_eq!(hook.headers["x-team"], "sales");
    assert_eq!(hook.secrets, stored.webhook().unwrap().secrets);
    // A secret given replaces the stored ones.
    let fresh = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx";
    let mut rotated = parse_action(&webhook(json!({"secret": fresh})))
        .unwrap()
        .handler;
    rotated.keep_stored(Some(&stored)).unwrap();
    assert_eq!(rotated.webhook().unwrap().secrets[0].text(), fresh);
    // The mask where nothing is stored is refused.
    let mut masked = parse_action(&webhook(json!({"headers": {"cookie": "***"}})))
        .unwrap()
        .handler;
    assert_eq!(
        masked.keep_stored(None).unwrap_err().field,
        "handler.headers.cookie"
    );
    let mut unknown = parse_action(&webhook(json!({"headers": {"x-token": "***"}})))
        .unwrap()
        .handler;
    assert!(unknown.keep_stored(Some(&stored)).is_err());
}

#[test]
fn every_type_has_a_schema_that_its_view_fits() {
    let schemas = Handler::schemas();
    assert_eq!(
        schemas.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        Handler::TYPES
    );
    for (name, schema) in &schemas {
        assert_eq!(schema["properties"]["type"]["const"], *name);
        assert_eq!(schema["additionalProperties"], false);
    }
    // Every field a view shows is one its schema names.
    let examples = [
        webhook(json!({"headers": {"x-a": "b"}, "body": {"k": "{{ event.type }}"}})),
        with_handler(
            json!({"type": "http", "url": "https://x/{{ event.id }}", "method": "GET",
            "query": {"a": "b"}, "headers": {"x-a": "b"}, "auth": {"type": "bearer", "token": "t"},
            "success_codes": [200], "sign": true, "timeout_ms": 1000}),
        ),
        with_handler(json!({"type": "http", "url": "https://x/", "form": {"a": "b"}})),
        with_handler(json!({"type": "http", "url": "https://x/", "body": "t",
            "content_type": "text/csv"})),
        with_handler(
            json!({"type": "email", "smtp": {"host": "smtp.x.org", "port": 587,
            "security": "starttls", "username": "u", "password": "p"},
            "from": "a@x.org", "to": ["b@x.org"], "cc": [], "bcc": [], "reply_to": "c@x.org",
            "subject": "s", "text": "t", "html": "<p>h</p>", "timeout_ms": 1000}),
        ),
        with_handler(json!({"type": "publish", "event_type": "a.b", "source": "s"})),
        with_handler(json!({"type": "log"})),
    ];
    for example in examples {
        let spec = parse_action(&example).unwrap();
        let kind = spec.handler.kind();
        let (_, schema) = schemas.iter().find(|(name, _)| *name == kind).unwrap();
        for key in spec.handler.view(false).as_object().unwrap().keys() {
            assert!(schema["properties"].get(key).is_some(), "{kind}.{key}");
        }
    }
}

#[test]
fn debug_output_hides_secrets_and_header_values() {
    let spec = parse_action(&webhook(json!({"secret": SECRET,
        "headers": {"authorization": "Bearer s3cret"}})))
    .unwrap();
    let text = format!("{spec:?}");
    assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
