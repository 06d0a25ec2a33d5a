//! What templates see: `event` (`id`, `type`, `source`, `time`, `received_at`, `data`,
//! `metadata`), `action` (`id`, `name`), `execution` (`id`, `attempt`), `tenant` (`id`) and
//! `secrets` (those the action refers to); in a workflow's steps also `steps` (each earlier
//! step's `output`).

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;
use minijinja::Value;

/// What a workflow's step sees besides the event: the outputs of the steps that succeeded, and
/// in `on_failure` the failed step's `error` (`step`, `message`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steps {
    pub outputs: BTreeMap<String, serde_json::Value>,
    pub error: Option<serde_json::Value>,
}

/// One attempt's context, built once and shared by all of its templates.
pub struct RenderContext {
    root: Value,
}

impl RenderContext {
    /// The context of `job`, an attempt of the action named `action_name`.
    pub fn new(job: &ExecutionJob, action_name: &str, secrets: &SecretValues) -> Self {
        Self::with_steps(job, action_name, secrets, None)
    }

    /// The context of a workflow step's attempt, which also sees the outputs of the steps
    /// that succeeded before it, as `steps.ID.output` (and in `on_failure`, `error`).
    pub fn with_steps(
        job: &ExecutionJob,
        action_name: &str,
        secrets: &SecretValues,
        steps: Option<&Steps>,
    ) -> Self {
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
        let error = steps.and_then(|s| s.error.as_ref()).map(from_json);
        let outputs = steps.map(|s| &s.outputs).into_iter().flatten();
        let steps = Value::from_pairs(outputs.map(|(id, output)| {
            (
                id.clone(),
                Value::from_pairs([("output", from_json(output))]),
            )
        }));
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
            ("steps", steps),
            ("error", error.unwrap_or(Value::UNDEFINED)),
        ]);
        Self { root }
    }

    pub(super) fn value(&self) -> &Value {
        &self.root
    }
}

/// A JSON value as templates read it.
fn from_json(value: &serde_json::Value) -> Value {
    use serde::Deserialize;
    Value::deserialize(value).unwrap_or(Value::from(()))
}
