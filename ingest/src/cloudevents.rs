//! CloudEvents 1.0 over HTTP, read into Herald's event: structured mode
//! (`application/cloudevents+json`), batch mode (`application/cloudevents-batch+json`, an array
//! of structured events) and binary mode (`ce-*` headers, the body is the data).
//!
//! Mapping: `id`, `type`, `source` and `time` are the event's own; `data` (or `data_base64`,
//! decoded) is its data; every other attribute (`subject`, `dataschema`, extensions) goes into
//! `metadata` as a string. `datacontenttype` only says how to read the data.
//!
//! In binary mode every `ce-*` value is percent-decoded, then read as UTF-8, as the HTTP
//! binding (3.1.3.2) requires: senders escape spaces, quotes, `%` and anything outside
//! printable ASCII that way.

use axum::http::HeaderMap;
use base64::Engine as _;
use herald_common::event::IncomingEvent;
use herald_common::json_bounds;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::error_codes::ErrorCode;

pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";
/// The header that marks a binary-mode CloudEvent.
pub const SPECVERSION_HEADER: &str = "ce-specversion";

/// Attributes that are not carried into `metadata`.
const OWN_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "type",
    "source",
    "time",
    "data",
    "data_base64",
    "datacontenttype",
];

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidCloudEvent, message.into())
}

fn raw(value: &Value) -> Result<Box<RawValue>, ApiError> {
    to_raw_value(value).map_err(|e| invalid(format!("unreadable data: {e}")))
}

/// The data of an event as JSON: JSON stays JSON, text becomes a JSON string, anything else
/// is refused (Herald's events carry JSON).
fn data_from_bytes(
    bytes: &[u8],
    content_type: Option<&str>,
) -> Result<Option<Box<RawValue>>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let media = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase())
        .unwrap_or_else(|| "application/json".into());
    if media == "application/json" || media.ends_with("+json") {
        // Parsed whole below, so first held to what a parser takes (and Herald can store).
        json_bounds::check(bytes, json_bounds::BODY_MAX_DEPTH)
            .map_err(|refusal| ApiError::json_refused(&refusal, "data"))?;
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("the data is not valid JSON: {e}")))?;
        return raw(&value).map(Some);
    }
    if media.starts_with("text/") {
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("text data must be UTF-8"))?;
        return raw(&Value::String(text.to_owned())).map(Some);
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!("data of type {media:?} cannot be stored; send JSON or text"),
    ))
}

fn string_attribute(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| invalid(format!("`{name}` is required")))
}

fn check_specversion(version: Option<String>) -> Result<(), ApiError> {
    match required(version, "specversion")?.as_str() {
        "1.0" => Ok(()),
        other => Err(invalid(format!(
            "specversion {other:?} is not supported; send 1.0"
        ))),
    }
}

/// One structured-mode event (a JSON object).
pub fn structured(value: Value) -> Result<IncomingEvent, ApiError> {
    let Value::Object(map) = value else {
        return Err(invalid("a CloudEvent must be a JSON object"));
    };
    check_specversion(string_attribute(&map, "specversion")?)?;
    let content_type = string_attribute(&map, "datacontenttype")?;
    let data = match (map.get("data"), map.get("data_base64")) {
        (Some(_), Some(_)) => return Err(invalid("`data` and `data_base64` are exclusive")),
        (Some(data), None) => Some(raw(data)?),
        (None, Some(Value::String(encoded))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| invalid("`data_base64` is not valid base64"))?;
            data_from_bytes(&bytes, content_type.as_deref())?
        }
        (None, Some(_)) => return Err(invalid("`data_base64` must be a string")),
        (None, None) => None,
    };
    let mut metadata = Map::new();
    for (name, value) in &map {
        if OWN_ATTRIBUTES.contains(&name.as_str()) {
            continue;
        }
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => {
                return Err(invalid(format!(
                    "attribute `{name}` must be a string, number or boolean"
                )));
            }
        };
        metadata.insert(name.clone(), Value::String(text));
    }
    Ok(IncomingEvent {
        id: Some(required(string_attribute(&map, "id")?, "id")?),
        event_type: Some(required(string_attribute(&map, "type")?, "type")?),
        source: Some(required(string_attribute(&map, "source")?, "source")?),
        time: string_attribute(&map, "time")?,
        data,
        metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
        tenant_id: None,
    })
}

/// A batch-mode body: a JSON array of structured events.
pub fn batch(value: Value) -> Result<Vec<IncomingEvent>, ApiError> {
    let Value::Array(items) = value else {
        return Err(invalid("a CloudEvents batch must be a JSON array"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            structured(item).map_err(|e| ApiError::new(e.code, format!("[{i}]: {}", e.message)))
        })
        .collect()
}

/// `%XX` sequences decoded, the result read as UTF-8. `None` for a `%` not followed by two
/// hex digits, or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            // `from_str_radix` alone would take a sign (`%+1`).
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            decoded.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// A `ce-*` header's value as the attribute's text.
fn header_value(name: &str, value: &axum::http::HeaderValue) -> Result<String, ApiError> {
    let text = value
        .to_str()
        .map_err(|_| invalid(format!("header {name} must be visible ASCII")))?;
    // Two hex digits must follow a `%` (HEXDIG allows either case) and the decoded bytes be UTF-8.
    percent_decode(text).ok_or_else(|| {
        invalid(format!(
            "header {name} is not valid percent-encoded UTF-8 (a `%` is sent as %25)"
        ))
    })
}

/// A binary-mode event: attributes in `ce-*` headers, the body is the data.
pub fn binary(headers: &HeaderMap, body: &[u8]) -> Result<IncomingEvent, ApiError> {
    let header = |name: &str| -> Result<Option<String>, ApiError> {
        let name = format!("ce-{name}");
        headers
            .get(&name)
            .map(|v| header_value(&name, v))
            .transpose()
    };
    check_specversion(header("specversion")?)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut metadata = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if OWN_ATTRIBUTES.contains(&attribute) {
            continue;
        }
        let text = header_value(name.as_str(), value)?;
        metadata.insert(attribute.to_owned(), Value::String(text));
    }
    Ok(IncomingEvent {
        id: Some(required(header("id")?, "id")?),
        event_type: Some(required(header("type")?, "type")?),
        source: Some(required(header("source")?, "source")?),
        time: header("time")?,
        data: data_from_bytes(body, content_type)?,
        metadata: (!metadata.is_empty()).then_some(Value::Object(metadata)),
        tenant_id: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({"specversion": "1.0", "id": "e1", "type": "order.paid", "source": "/shop"})
    }

    #[test]
    fn structured_attributes_map_onto_the_event() {
        let mut event = base();
        event["time"] = json!("2026-11-29T10:00:00Z");
        event["data"] = json!({"amount": 5});
        event["subject"] = json!("order-7");
        event["priority"] = json!(3);
        let incoming = structured(event).expect("valid");
        assert_eq!(incoming.id.as_deref(), Some("e1"));
        assert_eq!(incoming.event_type.as_deref(), Some("order.paid"));
        assert_eq!(incoming.source.as_deref(), Some("/shop"));
        assert_eq!(incoming.time.as_deref(), Some("2026-11-29T10:00:00Z"));
        assert_eq!(
            incoming.data.map(|d| d.get().to_owned()).as_deref(),
            Some(r#"{"amount":5}"#)
        );
        assert_eq!(
            incoming.metadata,
            Some(json!({"subject": "order-7", "priority": "3"}))
        );
    }

    #[test]
    fn data_base64_is_decoded_by_its_content_type() {
        let mut event = base();
        event["data_base64"] =
            json!(base64::engine::general_purpose::STANDARD.encode(br#"{"a":1}"#));
        event["datacontenttype"] = json!("application/json");
        let data = structured(event).expect("valid").data.expect("data");
        assert_eq!(data.get(), r#"{"a":1}"#);
        let mut event = base();
        event["data_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(b"hello"));
        event["datacontenttype"] = json!("text/plain");
        assert_eq!(
            structured(event).expect("valid").data.expect("data").get(),
            r#""hello""#
        );
    }

    #[test]
    fn bad_structured_events_name_what_is_wrong() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "JSON object"),
            (
                json!({"id": "e1", "type": "t", "source": "s"}),
                "specversion",
            ),
            (
                json!({"specversion": "0.3", "id": "e1", "type": "t", "source": "s"}),
                "0.3",
            ),
            (
                json!({"specversion": "1.0", "type": "t", "source": "s"}),
                "`id`",
            ),
            (
                json!({"specversion": "1.0", "id": "e1", "source": "s"}),
                "`type`",
            ),
            (
                json!({"specversion": "1.0", "id": "e1", "type": "t"}),
                "`source`",
            ),
            (
                json!({"specversion": "1.0", "id": "e1", "type": "t", "source": "s", "data": 1, "data_base64": "AA=="}),
                "exclusive",
            ),
            (
                json!({"specversion": "1.0", "id": "e1", "type": "t", "source": "s", "ext": {"a": 1}}),
                "`ext`",
            ),
        ];
        for (event, needle) in cases {
            let error = structured(event.clone()).expect_err("invalid");
            assert_eq!(error.code.code(), "invalid_cloudevent", "{event}");
            assert!(error.message.contains(needle), "{event}: {}", error.message);
        }
    }

    #[test]
    fn binary_mode_reads_headers_and_body() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "b1"),
            ("ce-type", "user.created"),
            ("ce-source", "urn:crm"),
            ("ce-tenantregion", "eu"),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        let incoming = binary(&headers, br#"{"user": 9}"#).expect("valid");
        assert_eq!(incoming.id.as_deref(), Some("b1"));
        assert_eq!(incoming.event_type.as_deref(), Some("user.created"));
        assert_eq!(incoming.metadata, Some(json!({"tenantregion": "eu"})));
        assert_eq!(incoming.data.expect("data").get(), r#"{"user":9}"#);
        headers.insert(
            "content-type",
            "application/octet-stream".parse().expect("value"),
        );
        assert_eq!(
            binary(&headers, b"\x00\x01")
                .expect_err("binary data")
                .status(),
            415
        );
    }

    #[test]
    fn binary_mode_percent_decodes_header_values() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "b%201"),
            ("ce-type", "user.created"),
            ("ce-source", "urn:crm%2Feu"),
            ("ce-subject", "Caf%C3%A9%20%22Z%22%25"),
            ("ce-plain", "no-escapes"),
        ] {
            headers.insert(name, value.parse().expect("header value"));
        }
        let incoming = binary(&headers, b"").expect("valid");
        assert_eq!(incoming.id.as_deref(), Some("b 1"));
        assert_eq!(incoming.source.as_deref(), Some("urn:crm/eu"));
        assert_eq!(
            incoming.metadata,
            Some(json!({"subject": "Café \"Z\"%", "plain": "no-escapes"}))
        );
        for bad in ["100%", "%zz", "%+1", "%C3", "%e"] {
            headers.insert("ce-subject", bad.parse().expect("header value"));
            let error = binary(&headers, b"").expect_err(bad);
            assert_eq!(error.code.code(), "invalid_cloudevent", "{bad}");
            assert!(error.message.contains("ce-subject"), "{}", error.message);
        }
    }

    #[test]
    fn a_batch_names_the_bad_item() {
        let error = batch(json!([base(), {"specversion": "1.0"}])).expect_err("invalid");
        assert!(error.message.starts_with("[1]:"), "{}", error.message);
        assert_eq!(batch(json!([base(), base()])).expect("valid").len(), 2);
    }
}
