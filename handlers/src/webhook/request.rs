//! Building a webhook request: body, Standard Webhooks headers and signatures. No I/O.

use chrono::SecondsFormat;
use herald_common::event::Event;

use crate::template::{RenderContext, RenderError};

use super::WebhookSpec;
use crate::signing::standard_headers;
use crate::transport::Request;

/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// The contract's webhook body: `{"id","type","source","timestamp","data","metadata"}`. The
/// event's `data` is spliced in as the publisher sent it.
pub fn body(event: &Event) -> Vec<u8> {
    let timestamp = event
        .time
        .unwrap_or(event.received_at)
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    let source = event
        .source
        .as_deref()
        .map(quoted)
        .unwrap_or_else(|| "null".into());
    let metadata = serde_json::to_string(&event.metadata).unwrap_or_else(|_| "{}".into());
    format!(
        r#"{{"id":{},"type":{},"source":{},"timestamp":{},"data":{},"metadata":{}}}"#,
        quoted(event.id.as_str()),
        quoted(event.event_type.as_str()),
        source,
        quoted(&timestamp),
        event.data.as_str(),
        metadata,
    )
    .into_bytes()
}

/// What a webhook sends: its body template rendered, or the contract's envelope.
pub fn payload<'h>(
    hook: &'h WebhookSpec,
    event: &Event,
    ctx: impl FnOnce() -> RenderContext,
) -> Result<(Vec<u8>, &'h str), RenderError> {
    match &hook.body.template {
        Some(template) => Ok((
            template.render(&hook.body.templates, &ctx())?,
            template.content_type(),
        )),
        None => Ok((body(event), "application/json")),
    }
}

/// The full request for one attempt, whose `webhook-id` is `webhook_id`, carrying `body` (the envelope, or what
/// the body template rendered, of `content_type`), signed with every active secret.
pub fn build(
    webhook_id: String,
    (body, content_type): (Vec<u8>, &str),
    hook: &WebhookSpec,
    timestamp: i64,
    traceparent: Option<&str>,
) -> Request {
    let mut headers: Vec<(String, String)> = hook
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    headers.push(("content-type".into(), content_type.into()));
    headers.push(("user-agent".into(), USER_AGENT.into()));
    headers.extend(standard_headers(
        &hook.secrets,
        &webhook_id,
        timestamp,
        &body,
    ));
    if let Some(traceparent) = traceparent {
        headers.push(("traceparent".into(), traceparent.into()));
    }
    Request {
        method: hook.method,
        url: hook.url.clone(),
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use herald_common::event::{EventLimits, IncomingEvent};
    use herald_common::ids::TenantId;
    use herald_common::json_tree::Json;

    use crate::signing::{Secret, generate_secret, verify};

    fn event(json: &str) -> Event {
        let incoming: IncomingEvent = serde_json::from_str(json).unwrap();
        incoming
            .validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
            .unwrap()
    }

    fn hook(secrets: &[String]) -> WebhookSpec {
        let value = serde_json::json!({"type": "webhook", "url": "https://example.com/hook",
                                       "headers": {"x-team": "billing"}, "secrets": secrets});
        let Json::Object(map) = Json::from_value(&value) else {
            unreachable!("an object")
        };
        super::super::parse(&map).unwrap()
    }

    #[test]
    fn the_body_is_the_contracts_shape_with_data_verbatim() {
        let e = event(
            r#"{"id":"e-1","type":"user.created","source":"crm","time":"2026-11-22T10:00:00Z",
                "data":{"b":[1,2],"a":"x\"y"},"metadata":{"region":"eu"}}"#,
        );
        let body: serde_json::Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"id": "e-1", "type": "user.created", "source": "crm",
                "timestamp": "2026-11-22T10:00:00.000Z", "data": {"b": [1, 2], "a": "x\"y"},
                "metadata": {"region": "eu"}})
        );
    }

    #[test]
    fn missing_fields_become_null_and_received_time() {
        let e = event(r#"{"type":"a"}"#);
        let body: serde_json::Value = serde_json::from_slice(&body(&e)).unwrap();
        assert_eq!(body["source"], serde_json::Value::Null);
        assert_eq!(body["data"], serde_json::Value::Null);
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn headers_carry_id_timestamp_and_one_signature_per_secret() {
        let secrets = vec![generate_secret(), generate_secret()];
        let keys: Vec<_> = secrets.iter().map(|s| Secret::parse(s).unwrap()).collect();
        let e = event(r#"{"type":"a","data":{"n":1}}"#);
        let id = herald_common::ids::ExecutionId::new();
        let request = build(
            id.to_string(),
            (body(&e), "application/json"),
            &hook(&secrets),
            1_700_000_000,
            Some("00-abc-def-01"),
        );
        let get = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(get("webhook-id"), id.to_string());
        assert_eq!(get("webhook-timestamp"), "1700000000");
        assert_eq!(get("content-type"), "application/json");
        assert_eq!(get("x-team"), "billing");
        assert_eq!(get("traceparent"), "00-abc-def-01");
        assert!(get("user-agent").starts_with("herald/"));
        let signatures = get("webhook-signature");
        assert_eq!(signatures.split(' ').count(), 2);
        for secret in &keys {
            assert!(verify(
                secret.key(),
                signatures,
                &id.to_string(),
                1_700_000_000,
                &request.body
            ));
        }
    }
}
