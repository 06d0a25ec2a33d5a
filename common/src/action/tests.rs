//! The action's own parts, parsed from the contract's JSON: matching, priority, mode, retry
//! and limits. (The handler types are tested in their crate.)

use serde_json::{Value, json};

use super::*;

/// A handler as a plain JSON object, standing in for the handler crate's types.
fn any_handler(value: &Json<'_>) -> Result<Value, ActionError> {
    match value {
        Json::Object(_) => Ok(value.to_value()),
        _ => Err(ActionError::new("handler", "must be an object")),
    }
}

fn parse(value: &Value) -> Result<ActionSpec<Value>, ActionError> {
    ActionSpec::from_json(&Json::from_value(value), any_handler)
}

fn base() -> Value {
    json!({
        "name": "notify-billing",
        "event_types": ["payment_intent.succeeded", "invoice.*"],
        "handler": {"type": "log"}
    })
}

fn with(key: &str, value: Value) -> Value {
    let mut v = base();
    v[key] = value;
    v
}

#[test]
fn a_stored_spec_reads_back_as_itself() {
    // PATCH and `PUT /v1/actions` edit an action's JSON as stored and parse it again.
    let examples = [
        json!({
            "name": "everything", "description": "d", "event_types": ["a.*", "#"],
            "source": "s", "priority": "high", "mode": "sync",
            "conditions": [{"path": "data.x", "op": "matches", "value": "^a"},
                {"not": {"path": "metadata.r", "op": "in", "value": ["eu"]}},
                {"all": [{"path": "type", "op": "exists"}]}],
            "handler": {"type": "log"},
            "retry": {"backoff": "exponential", "initial_s": 1, "max_s": 60, "jitter": 0.2},
            "rate_limit_per_s": 5, "max_concurrency": 2, "enabled": false}),
        with("retry", json!({"max_attempts": 3, "delays_s": [1, 2]})),
    ];
    for example in examples {
        let spec = parse(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
        let stored = serde_json::to_value(&spec).unwrap();
        assert!(
            stored.get("matching").is_none(),
            "the contract's flat shape: {stored}"
        );
        let again = parse(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(again, spec, "{stored}");
    }
}

#[test]
fn the_contract_example_parses() {
    let example = json!({
        "name": "notify-billing", "description": "optional",
        "event_types": ["payment_intent.succeeded", "invoice.*"], "source": "stripe",
        "conditions": [{"path": "data.amount", "op": "gt", "value": 100},
            {"any": [{"path": "data.currency", "op": "in", "value": ["usd", "eur"]},
                     {"path": "metadata.region", "op": "equals", "value": "eu"}]}],
        "priority": 100, "mode": "async",
        "handler": {"type": "webhook", "url": "https://example.com/hook"},
        "retry": {"max_attempts": 5, "delays_s": [30, 60, 300, 900, 3600]},
        "rate_limit_per_s": 50, "max_concurrency": 10, "enabled": true
    });
    let spec = parse(&example).unwrap();
    assert_eq!(spec.matching.priority, Priority(100));
    assert_eq!(spec.matching.conditions.len(), 2);
    assert_eq!(spec.matching.retry.max_attempts(), 5);
    assert_eq!(spec.rate_limit_per_s, Some(50));
    assert_eq!(spec.handler["url"], "https://example.com/hook");
}

#[test]
fn defaults_follow_the_contract() {
    let spec = parse(&base()).unwrap();
    assert_eq!(spec.matching.priority, Priority::NORMAL);
    assert_eq!(spec.matching.mode, ActionMode::Async);
    assert_eq!(spec.matching.retry, RetryPolicy::default());
    assert!(spec.matching.enabled);
    assert_eq!((spec.rate_limit_per_s, spec.max_concurrency), (None, None));
}

#[test]
fn priority_words() {
    for (word, value) in [
        ("critical", 10),
        ("high", 50),
        ("normal", 100),
        ("low", 200),
    ] {
        let spec = parse(&with("priority", json!(word))).unwrap();
        assert_eq!(spec.matching.priority, Priority(value));
    }
}

#[test]
fn backoff_policy_parses() {
    let v = with(
        "retry",
        json!({"max_attempts": 3, "backoff": "exponential", "initial_s": 1, "max_s": 60, "jitter": 0.2}),
    );
    let spec = parse(&v).unwrap();
    assert_eq!(spec.matching.retry.max_attempts(), 3);
    assert_eq!(spec.matching.retry.max_delay_s(), 60);
}

#[test]
fn errors_name_the_offending_field() {
    let cases = [
        (with("name", json!("")), "name"),
        (with("event_types", json!([])), "event_types"),
        (
            with("event_types", json!(["ok", "bad..pattern"])),
            "event_types[1]",
        ),
        (with("priority", json!("urgent")), "priority"),
        (with("mode", json!("later")), "mode"),
        (
            with("retry", json!({"max_attempts": 0})),
            "retry.max_attempts",
        ),
        (
            with("retry", json!({"delays_s": [1, -1]})),
            "retry.delays_s[1]",
        ),
        (with("retry", json!({"backoff": "random"})), "retry.backoff"),
        (
            with(
                "retry",
                json!({"backoff": "fixed", "initial_s": 10, "max_s": 5}),
            ),
            "retry.max_s",
        ),
        (with("rate_limit_per_s", json!(0)), "rate_limit_per_s"),
        (with("max_concurrency", json!(10_001)), "max_concurrency"),
        (with("description", json!("d".repeat(2001))), "description"),
        (with("handler", json!("webhook")), "handler"),
        (with("colour", json!("blue")), "colour"),
    ];
    for (value, field) in cases {
        let err = parse(&value).unwrap_err();
        assert_eq!(err.field, field, "{value}: {err}");
    }
    let mut missing = base();
    missing.as_object_mut().unwrap().remove("handler");
    assert_eq!(parse(&missing).unwrap_err().field, "handler");
}

#[test]
fn matching_parts_skip_the_handler() {
    let mut bad_handler = base();
    bad_handler["handler"] = json!("not even an object");
    let json = Json::from_value(&bad_handler);
    assert!(ActionSpec::from_json(&json, any_handler).is_err());
    let matching = ActionMatching::from_json(&json).unwrap();
    assert_eq!(matching.name, "notify-billing");
    assert_eq!(matching.costly_parts(), 1);
    let unknown = with("colour", json!("blue"));
    let unknown = Json::from_value(&unknown);
    assert_eq!(
        ActionMatching::from_json(&unknown).unwrap_err().field,
        "colour"
    );
}

#[test]
fn an_unread_handler_reads_anything() {
    let unread: Unread = serde_json::from_value(json!({"type": "webhook", "x": [1]})).unwrap();
    assert_eq!(unread, Unread);
}

#[test]
fn patterns() {
    for ok in [
        "a", "a.b", "*", "#", "a.*", "a.#", "#.b", "*.*.c", "a-b_c.D9",
    ] {
        assert!(validate_pattern(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a..b", "a.", ".a", "a*", "a.b#", "a b", "a.**"] {
        assert!(validate_pattern(bad).is_err(), "{bad}");
    }
}
