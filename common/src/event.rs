//! The event: what publishers send, validated once at the edge, then carried unchanged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::ids::TenantId;

/// Longest accepted event type, event id or source, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why an incoming event was refused. `code` is stable and goes into API errors and dead letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EventError {
    pub code: &'static str,
    pub message: String,
}

impl EventError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A dotted event type such as `payment_intent.succeeded`: segments of `[A-Za-z0-9_-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

impl EventType {
    pub fn parse(text: &str) -> Result<Self, EventError> {
        if text.is_empty() {
            return Err(EventError::new(
                "invalid_event_type",
                "`type` must not be empty",
            ));
        }
        if text.len() > MAX_NAME_LEN {
            return Err(EventError::new(
                "invalid_event_type",
                format!("`type` is longer than {MAX_NAME_LEN} bytes"),
            ));
        }
        for segment in text.split('.') {
            let valid = !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(EventError::new(
                    "invalid_event_type",
                    format!(
                        "`type` {text:?} must be segments of [A-Za-z0-9_-] separated by single dots"
                    ),
                ));
            }
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An event id: client-chosen (the dedup key within its tenant) or generated as `evt_<uuid>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventId(Arc<str>);

impl EventId {
    pub fn generate() -> Self {
        Self(format!("evt_{}", uuid::Uuid::now_v7().simple()).into())
    }

    pub fn parse(text: &str) -> Result<Self, EventError> {
        let printable = text.bytes().all(|b| b.is_ascii_graphic());
        if text.is_empty() || text.len() > MAX_NAME_LEN || !printable {
            return Err(EventError::new(
                "invalid_event_id",
                format!(
                    "`id` must be 1 to {MAX_NAME_LEN} printable ASCII characters without spaces"
                ),
            ));
        }
        Ok(Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// JSON text kept exactly as the publisher sent it: matching reads into it lazily and webhooks
/// splice it into their body without a parse and re-serialise round trip.
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Arc<str>);

impl RawJson {
    pub fn null() -> Self {
        Self("null".into())
    }

    /// Wraps text the caller has already validated as JSON.
    pub fn from_validated(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    pub fn from_value(value: &serde_json::Value) -> Self {
        Self(value.to_string().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| serde::de::Error::custom(format!("embedded JSON is invalid: {e}")))?;
        Ok(Self(text.into()))
    }
}

/// String metadata attached to an event (`metadata.region = "eu"`).
pub type Metadata = BTreeMap<String, String>;

/// An accepted event as it travels between services. Built only through validation
/// ([`IncomingEvent::validate`]), so a value of this type is always well-formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub tenant_id: TenantId,
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub data: RawJson,
    #[serde(default)]
    pub metadata: Metadata,
    /// The W3C `traceparent` of the span that handed the event on (see `crate::trace`):
    /// carried per event because one broker message carries many. Not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

/// The event a publisher sends over HTTP (`tenant_id` comes from the key) or straight to the
/// broker (`tenant_id` in the body). Fields are loose here and checked by [`Self::validate`].
#[derive(Debug, Deserialize)]
pub struct IncomingEvent {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Limits applied to every incoming event, whatever door it came through.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    pub max_metadata_entries: usize,
    pub max_metadata_bytes: usize,
    /// Deepest nesting of arrays and objects in `data` (see [`crate::json_bounds`]).
    pub max_json_depth: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_metadata_entries: 64,
            max_metadata_bytes: 8 * 1024,
            max_json_depth: 64,
        }
    }
}

impl IncomingEvent {
    /// Checks every field and builds the canonical event. `fallback_id` is used when the
    /// publisher gave no id (HTTP generates one; the broker uses the message id).
    pub fn validate(
        self,
        tenant_id: TenantId,
        fallback_id: Option<EventId>,
        received_at: DateTime<Utc>,
        limits: &EventLimits,
    ) -> Result<Event, EventError> {
        let event_type = match self.event_type.as_deref() {
            Some(text) => EventType::parse(text)?,
            None => return Err(EventError::new("missing_event_type", "`type` is required")),
        };
        let id = match self.id.as_deref() {
            Some(text) => EventId::parse(text)?,
            None => fallback_id.unwrap_or_else(EventId::generate),
        };
        // PostgreSQL's text cannot hold U+0000; stored, it would fail its whole batch.
        if let Some(source) = &self.source
            && (source.is_empty() || source.len() > MAX_NAME_LEN || source.contains('\0'))
        {
            return Err(EventError::new(
                "invalid_source",
                format!("`source` must be 1 to {MAX_NAME_LEN} bytes without U+0000"),
            ));
        }
        let time = match self.time.as_deref() {
            None => None,
            Some(text) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|_| {
                        EventError::new("invalid_time", "`time` must be an RFC 3339 timestamp")
                    })?
                    .with_timezone(&Utc),
            ),
        };
        let metadata = parse_metadata(self.metadata, limits)?;
        let data = match self.data {
            Some(raw) => {
                // Kept as raw text, so nothing else has looked inside it.
                crate::json_bounds::check(raw.get().as_bytes(), limits.max_json_depth)
                    .map_err(|refusal| EventError::new(refusal.code(), refusal.message("data")))?;
                RawJson::from_validated(String::from(Box::<str>::from(raw)))
            }
            None => RawJson::null(),
        };
        Ok(Event {
            tenant_id,
            id,
            event_type,
            source: self.source,
            time,
            received_at,
            data,
            metadata,
            trace: None,
        })
    }
}

fn parse_metadata(
    value: Option<serde_json::Value>,
    limits: &EventLimits,
) -> Result<Metadata, EventError> {
    let invalid = |message: String| EventError::new("invalid_metadata", message);
    let map = match value {
        None | Some(serde_json::Value::Null) => return Ok(Metadata::new()),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err(invalid("`metadata` must be an object of strings".into())),
    };
    if map.len() > limits.max_metadata_entries {
        return Err(EventError::new(
            "metadata_too_large",
            format!(
                "`metadata` has more than {} entries",
                limits.max_metadata_entries
            ),
        ));
    }
    let mut size = 0;
    let mut out = Metadata::new();
    for (key, value) in map {
        let serde_json::Value::String(text) = value else {
            return Err(invalid(format!("`metadata.{key}` must be a string")));
        };
        // PostgreSQL's jsonb cannot hold U+0000; stored, it would fail its whole batch.
        if key.contains('\0') || text.contains('\0') {
            return Err(invalid(
                "`metadata` keys and values must not contain U+0000".into(),
            ));
        }
        size += key.len() + text.len();
        out.insert(key, text);
    }
    if size > limits.max_metadata_bytes {
        return Err(EventError::new(
            "metadata_too_large",
            format!(
                "`metadata` is larger than {} bytes",
                limits.max_metadata_bytes
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(json: &str) -> IncomingEvent {
        serde_json::from_str(json).unwrap()
    }

    fn validate(json: &str) -> Result<Event, EventError> {
        incoming(json).validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
    }

    #[test]
    fn event_types_follow_the_contract() {
        let cases = [
            ("user.created", true),
            ("payment_intent.succeeded", true),
            ("a-b.C_9", true),
            ("single", true),
            ("", false),
            ("user..created", false),
            (".user", false),
            ("user.", false),
            ("user created", false),
            ("user.*", false),
            ("user.#", false),
            ("ünïcode", false),
        ];
        for (text, ok) in cases {
            assert_eq!(EventType::parse(text).is_ok(), ok, "{text:?}");
        }
        assert!(EventType::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn a_full_event_validates_and_keeps_data_verbatim() {
        let event = validate(
            r#"{"id":"e1","type":"user.created","source":"crm","time":"2026-11-22T10:00:00Z",
               "data":{"b":1, "a":[1,2]},"metadata":{"region":"eu"}}"#,
        )
        .unwrap();
        assert_eq!(event.id.as_str(), "e1");
        assert_eq!(event.data.as_str(), r#"{"b":1, "a":[1,2]}"#);
        assert_eq!(event.metadata["region"], "eu");
        assert!(event.time.is_some());
    }

    #[test]
    fn missing_id_is_generated_and_missing_data_is_null() {
        let event = validate(r#"{"type":"user.created"}"#).unwrap();
        assert!(event.id.as_str().starts_with("evt_"));
        assert_eq!(event.data.as_str(), "null");
    }

    #[test]
    fn bad_fields_name_their_problem() {
        let cases = [
            (r#"{}"#, "missing_event_type"),
            (r#"{"type":"a..b"}"#, "invalid_event_type"),
            (r#"{"type":"a","id":""}"#, "invalid_event_id"),
            (r#"{"type":"a","id":"has space"}"#, "invalid_event_id"),
            (r#"{"type":"a","time":"yesterday"}"#, "invalid_time"),
            (r#"{"type":"a","metadata":{"n":1}}"#, "invalid_metadata"),
            (r#"{"type":"a","metadata":[1]}"#, "invalid_metadata"),
            (r#"{"type":"a","source":""}"#, "invalid_source"),
            // PostgreSQL's text and jsonb cannot hold U+0000: stored, it would fail the whole
            // batch of events written with it.
            (r#"{"type":"a","source":"a\u0000"}"#, "invalid_source"),
            (
                r#"{"type":"a","metadata":{"k":"\u0000"}}"#,
                "invalid_metadata",
            ),
            (
                r#"{"type":"a","metadata":{"\u0000":"v"}}"#,
                "invalid_metadata",
            ),
        ];
        for (json, code) in cases {
            assert_eq!(validate(json).unwrap_err().code, code, "{json}");
        }
    }

    #[test]
    fn data_that_could_not_be_stored_or_read_back_is_refused() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let cases = [
            (format!(r#"{{"type":"a","data":{deep}}}"#), "json_too_deep"),
            (
                r#"{"type":"a","data":{"n":1e400}}"#.to_owned(),
                "number_out_of_range",
            ),
            (
                r#"{"type":"a","data":["\udc00"]}"#.to_owned(),
                "lone_surrogate",
            ),
        ];
        for (json, code) in cases {
            let error = validate(&json).unwrap_err();
            assert_eq!(error.code, code, "{json}");
            assert!(error.message.starts_with("`data"), "{}", error.message);
        }
        let at_limit = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(validate(&format!(r#"{{"type":"a","data":{at_limit}}}"#)).is_ok());
        // U+0000 is fine in `data` (stored as json, not jsonb or text).
        assert!(validate(r#"{"type":"a","data":{"s":"a\u0000b","n":1e-400}}"#).is_ok());
    }

    #[test]
    fn metadata_limits_are_enforced() {
        let limits = EventLimits {
            max_metadata_entries: 2,
            max_metadata_bytes: 10,
            ..EventLimits::default()
        };
        let too_many = incoming(r#"{"type":"a","metadata":{"a":"1","b":"2","c":"3"}}"#);
        let err = too_many
            .validate(TenantId::new(), None, Utc::now(), &limits)
            .unwrap_err();
        assert_eq!(err.code, "metadata_too_large");
        let too_big = incoming(r#"{"type":"a","metadata":{"a":"0123456789"}}"#);
        let err = too_big
            .validate(TenantId::new(), None, Utc::now(), &limits)
            .unwrap_err();
        assert_eq!(err.code, "metadata_too_large");
    }

    #[test]
    fn events_round_trip_through_msgpack() {
        let event = validate(r#"{"type":"a.b","data":{"x":[1,{"y":null}]}}"#).unwrap();
        let bytes = rmp_serde::to_vec_named(&event).unwrap();
        let back: Event = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, event);
    }
}
