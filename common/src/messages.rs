//! Everything that crosses the broker between Herald's services: typed, versioned, MessagePack.
//!
//! Each message names its kind and schema version in the AMQP `type` property, for example
//! `herald.event_batch.v1`. A consumer that meets a version it does not know, or a body that
//! does not decode, dead-letters the message with that reason instead of retrying it forever.
//! Events published by outside programs carry no Herald type: they are the contract's JSON (or
//! the same structure in MessagePack) and are read by [`decode_events`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::broker::topology::JOBS_EXCHANGE;
use crate::event::{Event, EventError, EventId, EventLimits, IncomingEvent};
use crate::ids::{ActionId, ExecutionId, TenantId};

/// Why a broker message could not be used. Its text becomes the dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("unsupported version {version} of {kind} (this build reads v{supported})")]
    UnsupportedVersion {
        kind: &'static str,
        version: u32,
        supported: u32,
    },
    #[error("corrupt {kind} body: {detail}")]
    Corrupt { kind: &'static str, detail: String },
    #[error("unsupported content type {0:?}: use application/json or application/msgpack")]
    ContentType(String),
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] EventError),
}

/// Every reason code a Herald consumer dead-letters with: [`DecodeError::code`]'s own, the
/// event validation's (`EventError`, `json_bounds`' among them), the matcher's
/// `unknown_tenant`, and [`UNSTORABLE`]. Metrics create each
/// `herald_dead_letters_total` series at zero from this list, so that the first dead letter of
/// a kind is an increase Prometheus sees (a series born at 1 is not).
pub const DEAD_LETTER_CODES: &[&str] = &[
    "unknown_type",
    "unsupported_version",
    "corrupt_body",
    "unsupported_content_type",
    "missing_tenant_id",
    "invalid_tenant_id",
    "unknown_tenant",
    "missing_event_type",
    "invalid_event_type",
    "invalid_event_id",
    "invalid_source",
    "invalid_time",
    "invalid_metadata",
    "metadata_too_large",
    "json_too_deep",
    "number_out_of_range",
    "lone_surrogate",
    UNSTORABLE,
];

/// The dead-letter code of a message whose data the database refused when it was written
/// (alone: the messages batched with it are written without it).
pub const UNSTORABLE: &str = "unstorable";

impl DecodeError {
    /// A short, stable label for metrics and the dead-letter header.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownType(_) => "unknown_type",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::Corrupt { .. } => "corrupt_body",
            Self::ContentType(_) => "unsupported_content_type",
            Self::InvalidEvent(e) => e.code,
        }
    }
}

/// A kind of internal message and the schema version this build writes and reads.
pub trait Message: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const VERSION: u32;

    /// The AMQP `type` property for this message.
    fn type_name() -> String {
        format!("herald.{}.v{}", Self::KIND, Self::VERSION)
    }

    fn encode(&self) -> Vec<u8> {
        // Named fields: a newer writer may add optional fields without breaking older readers.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes a body whose AMQP `type` property is `type_name`.
    fn decode(type_name: Option<&str>, body: &[u8]) -> Result<Self, DecodeError> {
        let type_name = type_name.unwrap_or_default();
        let (kind, version) =
            split_type(type_name).ok_or_else(|| DecodeError::UnknownType(type_name.to_owned()))?;
        if kind != Self::KIND {
            return Err(DecodeError::UnknownType(type_name.to_owned()));
        }
        if version != Self::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                kind: Self::KIND,
                version,
                supported: Self::VERSION,
            });
        }
        rmp_serde::from_slice(body).map_err(|e| DecodeError::Corrupt {
            kind: Self::KIND,
            detail: e.to_string(),
        })
    }
}

/// Splits `herald.<kind>.v<version>`.
pub fn split_type(type_name: &str) -> Option<(&str, u32)> {
    let rest = type_name.strip_prefix("herald.")?;
    let (kind, version) = rest.rsplit_once(".v")?;
    Some((kind, version.parse().ok()?))
}

/// Whether an AMQP `type` property names one of Herald's own messages.
pub fn is_internal(type_name: Option<&str>) -> bool {
    type_name.is_some_and(|t| t.starts_with("herald."))
}

/// Accepted events on their way to the matcher. Ingest sends many per message: the broker's
/// cost is per message, not per byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

impl Message for EventBatch {
    const KIND: &'static str = "event_batch";
    const VERSION: u32 = 1;
}

/// Which queue a job waits in: first attempts are kept apart from retries so that a backlog
/// of retries to a dead endpoint never delays fresh work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    First,
    Retry,
}

impl Lane {
    pub fn routing_key(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Retry => "retry",
        }
    }
}

/// One attempt to make for one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionJob {
    pub execution_id: ExecutionId,
    pub tenant_id: TenantId,
    pub action_id: ActionId,
    /// The attempt this job makes, from 1.
    pub attempt: u32,
    pub event: Event,
    /// For a workflow run: the step this job attempts (`None`: the run itself, to be moved on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl ExecutionJob {
    /// The id the receiver sees for this job's deliveries (`webhook-id`, a message id, a
    /// published event's id): the execution's, and for a workflow's step the execution's and
    /// the step's, the same for every attempt and redelivery of that step and no other.
    pub fn delivery_id(&self) -> String {
        match &self.step {
            None => self.execution_id.to_string(),
            Some(step) => format!("{}_{}", self.execution_id, step.trim_start_matches('@')),
        }
    }
}

/// Jobs for the executor, several per broker message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobBatch {
    pub jobs: Vec<ExecutionJob>,
}

impl Message for JobBatch {
    const KIND: &'static str = "job_batch";
    const VERSION: u32 = 1;
}

/// An execution that ended `failed`: published to `herald.failed` once its last attempt is
/// recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFailed {
    pub execution_id: ExecutionId,
    pub tenant_id: TenantId,
    pub action_id: ActionId,
    pub event_id: EventId,
    pub attempts: u32,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub failed_at: DateTime<Utc>,
}

impl Message for ExecutionFailed {
    const KIND: &'static str = "execution_failed";
    const VERSION: u32 = 1;
}

/// Work to release later: an encoded message and where to publish it once `due_at` passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DelayedJob {
    /// Deterministic, so a job handed over twice is stored once (for retries:
    /// `<execution id>:<attempt>`).
    pub id: String,
    pub due_at: DateTime<Utc>,
    pub exchange: String,
    pub routing_key: String,
    /// The AMQP `type` of `body`.
    pub message_type: String,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Headers to restore on release, such as the W3C trace context.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Message for DelayedJob {
    const KIND: &'static str = "delayed_job";
    const VERSION: u32 = 1;
}

impl DelayedJob {
    /// An attempt to release onto the executors' `lane` at `due`. Its id is
    /// `<execution uuid>:<attempt>` (for a workflow's step `<execution uuid>:<step>.<attempt>`), then `:<tag>` when one hand-over of the same attempt must
    /// not be taken for another (held back until a time, retried by an operator). The
    /// scheduler finds every job of one execution by the uuid prefix.
    pub fn attempt(job: ExecutionJob, lane: Lane, tag: Option<&str>, due: DateTime<Utc>) -> Self {
        let mut id = match &job.step {
            None => format!("{}:{}", job.execution_id.as_uuid(), job.attempt),
            Some(step) => format!("{}:{step}.{}", job.execution_id.as_uuid(), job.attempt),
        };
        if let Some(tag) = tag {
            id.push(':');
            id.push_str(tag);
        }
        // The trace goes with the job: the scheduler's release continues it.
        let headers = job
            .event
            .trace
            .iter()
            .map(|t| (crate::trace::TRACEPARENT.to_owned(), t.clone()))
            .collect();
        Self {
            id,
            due_at: due,
            exchange: JOBS_EXCHANGE.into(),
            routing_key: lane.routing_key().into(),
            message_type: JobBatch::type_name(),
            body: JobBatch { jobs: vec![job] }.encode(),
            headers,
        }
    }
}

/// Reads events from a message on `herald.events`: Herald's own batches, or a single event
/// published by an outside program as JSON or MessagePack with a `tenant_id`.
pub fn decode_events(
    type_name: Option<&str>,
    content_type: Option<&str>,
    message_id: Option<&str>,
    body: &[u8],
    received_at: DateTime<Utc>,
    limits: &EventLimits,
) -> Result<Vec<Event>, DecodeError> {
    if is_internal(type_name) {
        return EventBatch::decode(type_name, body).map(|batch| batch.events);
    }
    let incoming: IncomingEvent =
        match content_type.map(|c| c.split(';').next().unwrap_or(c).trim()) {
            None | Some("application/json") | Some("") => {
                serde_json::from_slice(body).map_err(|e| DecodeError::Corrupt {
                    kind: "event",
                    detail: e.to_string(),
                })?
            }
            Some("application/msgpack") | Some("application/x-msgpack") => {
                let value: serde_json::Value =
                    rmp_serde::from_slice(body).map_err(|e| DecodeError::Corrupt {
                        kind: "event",
                        detail: e.to_string(),
                    })?;
                // Through text, so `data` is kept as raw JSON exactly like an HTTP event's.
                serde_json::from_str(&value.to_string()).map_err(|e| DecodeError::Corrupt {
                    kind: "event",
                    detail: e.to_string(),
                })?
            }
            Some(other) => return Err(DecodeError::ContentType(other.to_owned())),
        };
    let tenant_id = match incoming.tenant_id.as_deref() {
        Some(text) => text.parse::<TenantId>().map_err(|e| {
            DecodeError::InvalidEvent(EventError {
                code: "invalid_tenant_id",
                message: e.to_string(),
            })
        })?,
        None => {
            return Err(DecodeError::InvalidEvent(EventError {
                code: "missing_tenant_id",
                message: "`tenant_id` is required on events published to the broker".into(),
            }));
        }
    };
    let fallback_id = message_id
        .filter(|m| !m.is_empty())
        .map(EventId::parse)
        .transpose()?;
    Ok(vec![incoming.validate(
        tenant_id,
        fallback_id,
        received_at,
        limits,
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_event() -> Event {
        let incoming: IncomingEvent =
            serde_json::from_str(r#"{"type":"user.created","data":{"n":1}}"#).unwrap();
        incoming
            .validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
            .unwrap()
    }

    #[test]
    fn internal_messages_round_trip_with_their_type() {
        let batch = EventBatch {
            events: vec![sample_event(), sample_event()],
        };
        let body = batch.encode();
        assert_eq!(EventBatch::type_name(), "herald.event_batch.v1");
        let back = EventBatch::decode(Some("herald.event_batch.v1"), &body).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn unknown_versions_and_kinds_and_corrupt_bodies_are_named() {
        let body = EventBatch { events: vec![] }.encode();
        let err = EventBatch::decode(Some("herald.event_batch.v9"), &body).unwrap_err();
        assert_eq!(err.code(), "unsupported_version");
        assert!(err.to_string().contains("version 9"));
        let err = EventBatch::decode(Some("herald.job_batch.v1"), &body).unwrap_err();
        assert_eq!(err.code(), "unknown_type");
        let err = EventBatch::decode(None, &body).unwrap_err();
        assert_eq!(err.code(), "unknown_type");
        let err = EventBatch::decode(Some("herald.event_batch.v1"), b"\xc1garbage").unwrap_err();
        assert_eq!(err.code(), "corrupt_body");
    }

    #[test]
    fn every_way_an_outside_event_is_refused_has_a_listed_code() {
        let tenant = TenantId::new();
        let limits = EventLimits::default();
        let big = "x".repeat(limits.max_metadata_bytes + 1);
        let bodies = [
            r#"{"type":"a.b"}"#.to_owned(),
            r#"{"tenant_id":"nope","type":"a.b"}"#.to_owned(),
            format!(r#"{{"tenant_id":"{tenant}"}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a..b"}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","id":""}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","source":""}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","time":"then"}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","metadata":{{"n":1}}}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","metadata":{{"k":"{big}"}}}}"#),
            format!(
                r#"{{"tenant_id":"{tenant}","type":"a","data":{}{}}}"#,
                "[".repeat(65),
                "]".repeat(65)
            ),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","data":1e400}}"#),
            format!(r#"{{"tenant_id":"{tenant}","type":"a","data":"\udc00"}}"#),
            "not json".to_owned(),
        ];
        for body in bodies {
            let err = decode_events(
                None,
                Some("application/json"),
                None,
                body.as_bytes(),
                Utc::now(),
                &limits,
            )
            .unwrap_err();
            assert!(
                DEAD_LETTER_CODES.contains(&err.code()),
                "{}: {body}",
                err.code()
            );
        }
        let err =
            decode_events(None, Some("text/plain"), None, b"{}", Utc::now(), &limits).unwrap_err();
        assert!(DEAD_LETTER_CODES.contains(&err.code()), "{}", err.code());
    }

    #[test]
    fn outside_events_are_read_as_json_or_msgpack() {
        let tenant = TenantId::new();
        let json = format!(r#"{{"tenant_id":"{tenant}","type":"a.b","data":{{"x":1}}}}"#);
        let limits = EventLimits::default();
        let events = decode_events(
            None,
            Some("application/json"),
            Some("m-1"),
            json.as_bytes(),
            Utc::now(),
            &limits,
        )
        .unwrap();
        assert_eq!(events[0].tenant_id, tenant);
        assert_eq!(
            events[0].id.as_str(),
            "m-1",
            "the message id is the event id"
        );

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let packed = rmp_serde::to_vec_named(&value).unwrap();
        let events = decode_events(
            None,
            Some("application/msgpack"),
            None,
            &packed,
            Utc::now(),
            &limits,
        )
        .unwrap();
        assert_eq!(events[0].event_type.as_str(), "a.b");
        assert_eq!(events[0].data.as_str(), r#"{"x":1}"#);
    }

    #[test]
    fn bad_outside_events_have_reasons() {
        let limits = EventLimits::default();
        let now = Utc::now();
        let cases: [(Option<&str>, &[u8], &str); 5] = [
            (Some("application/json"), b"{not json", "corrupt_body"),
            (Some("text/plain"), b"hi", "unsupported_content_type"),
            (
                Some("application/json"),
                br#"{"type":"a"}"#,
                "missing_tenant_id",
            ),
            (
                Some("application/json"),
                br#"{"type":"a","tenant_id":"nope"}"#,
                "invalid_tenant_id",
            ),
            (Some("application/msgpack"), b"\xc1", "corrupt_body"),
        ];
        for (content_type, body, code) in cases {
            let err = decode_events(None, content_type, None, body, now, &limits).unwrap_err();
            assert_eq!(err.code(), code, "{content_type:?}");
        }
    }
}
