//! What templates see: `event` (`id`, `type`, `source`, `time`, `received_at`, `data`,
//! `metadata`), `action` (`id`, `name`), `execution` (`id`, `attempt`), `tenant` (`id`) and
//! `secrets` (those the action refers to).

use chrono::SecondsFormat;
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;
use minijinja::Value;

/// One attempt's context, built once and shared by all of its templates.
pub struct RenderContext {
    root: Value,
}

impl RenderContext {
    /// The context of `job`, an attempt of the action named `action_name`.
    pub fn new(job: &ExecutionJob, action_name: &str, secrets: &SecretValues) -> Self {
        let event = &job.event;
        // Validated JSON when accepted; a value that no longer parses reads as null.
        let data: Value = serde_json::from_str(event.data.as_str()).unwrap_or(Value::from(()));
        let time =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        let metadata = Value::from_pairs(
            event
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
        );
        let event = Value::from_pairs([
            ("id", Value::from(event.id.as_str())),
            ("type", Value::from(event.event_type.as_str())),
            ("source", Value::from(event.source.clone())),
            (
                "time",
                Value::from(time(event.time.unwrap_or(event.received_at))),
            ),
            ("received_at", Value::from(time(event.received_at))),
            ("data", data),
            ("metadata", metadata),
        ]);
        let secrets = Value::from_pairs(
            secrets
                .0
                .iter()
                .map(|(name, value)| (name.clone(), Value::from(value.as_str()))),
        );
        let root = Value::from_pairs([
            ("event", event),
            (
                "action",
                Value::from_pairs([
                    ("id", Value::from(job.action_id.to_string())),
                    ("name", Value::from(action_name)),
                ]),
            ),
            (
                "execution",
                Value::from_pairs([
                    ("id", Value::from(job.execution_id.to_string())),
                    ("attempt", Value::from(job.attempt)),
                ]),
            ),
            (
                "tenant",
                Value::from_pairs([("id", Value::from(job.tenant_id.to_string()))]),
            ),
            ("secrets", secrets),
        ]);
        Self { root }
    }

    pub(super) fn value(&self) -> &Value {
        &self.root
    }
}
