//! The handler types, in one place: each variant is a folder of its own (spec, view, schema,
//! execution), and this is where a new type is added to what actions may use.

use herald_common::action::{ActionError, HandlerSpec, ReadHandler};
use herald_common::json_tree::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attempt::Performed;
use crate::context::Context;
use crate::log::{self, LogSpec};
use crate::publish::{self, PublishSpec};
use crate::webhook::{self, WebhookSpec};

/// What an action does when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handler {
    /// A signed HTTP request to another system.
    Webhook(WebhookSpec),
    /// A new event for the same tenant on `herald.events`, so that actions can chain.
    Publish(PublishSpec),
    /// A line in the executor's log: for trying actions out.
    Log(LogSpec),
}

impl Handler {
    /// The handler types, as `handler.type` names them.
    pub const TYPES: [&'static str; 3] = ["webhook", "publish", "log"];

    /// Checks a handler as an action gives it, naming the field of anything wrong.
    pub fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("handler", "must be an object"));
        };
        match map.get("type").and_then(Json::as_str) {
            Some("webhook") => webhook::parse(map).map(Self::Webhook),
            Some("publish") => publish::parse(map).map(Self::Publish),
            Some("log") => log::parse(map).map(Self::Log),
            Some(other) => Err(ActionError::new(
                "handler.type",
                format!(
                    "unknown handler type {other:?}; known: {}",
                    Self::TYPES.join(", ")
                ),
            )),
            None => Err(ActionError::new("handler.type", "is required")),
        }
    }

    /// Each type's JSON Schema, by type name.
    pub fn schemas() -> [(&'static str, Value); 3] {
        [
            ("webhook", webhook::schema()),
            ("publish", publish::schema()),
            ("log", log::schema()),
        ]
    }

    /// The handler as reads show it: credentials masked; signing secrets in full only when
    /// `reveal_secrets` (the answer that created them).
    pub fn view(&self, reveal_secrets: bool) -> Value {
        match self {
            Self::Webhook(spec) => webhook::view(spec, reveal_secrets),
            Self::Publish(spec) => publish::view(spec),
            Self::Log(spec) => log::view(spec),
        }
    }

    /// The destination it sends to (`scheme://host:port`), for circuits and per-destination
    /// limits; `None` for handlers that reach nothing outside.
    pub fn destination(&self) -> Option<&str> {
        match self {
            Self::Webhook(spec) => Some(&spec.endpoint),
            Self::Publish(_) | Self::Log(_) => None,
        }
    }

    /// Whether a test send (`POST /v1/actions/{id}/test` with `send`) may make one real
    /// attempt of it: one that only sends a request, and changes nothing in Herald.
    pub fn can_be_tried(&self) -> bool {
        matches!(self, Self::Webhook(_))
    }

    /// The webhook's settings, for a handler that is one.
    pub fn webhook(&self) -> Option<&WebhookSpec> {
        match self {
            Self::Webhook(spec) => Some(spec),
            _ => None,
        }
    }

    /// Makes one attempt.
    pub async fn execute(&self, ctx: &Context<'_>) -> Performed {
        match self {
            Self::Webhook(spec) => webhook::execute(spec, ctx).await,
            Self::Publish(spec) => publish::execute(spec, ctx).await,
            Self::Log(spec) => log::execute(spec, ctx).await,
        }
    }
}

impl ReadHandler for Handler {
    fn read(plain: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(plain)
    }
}

impl HandlerSpec for Handler {
    fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Publish(_) => "publish",
            Self::Log(_) => "log",
        }
    }

    fn keep_stored(&mut self, stored: Option<&Self>) -> Result<(), ActionError> {
        match self {
            Self::Webhook(spec) => webhook::keep_stored(spec, stored.and_then(Self::webhook)),
            Self::Publish(_) | Self::Log(_) => Ok(()),
        }
    }
}
