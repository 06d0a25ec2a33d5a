//! The handler types, in one place: each variant is a folder of its own (spec, view, schema,
//! execution), and this is where a new type is added to what actions may use.

use herald_common::action::{ActionError, HandlerSpec, ReadHandler};
use herald_common::json_tree::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::attempt::Performed;
use crate::context::Context;
use crate::email::{self, EmailSpec};
use crate::http::{self, HttpSpec};
use crate::log::{self, LogSpec};
use crate::publish::{self, PublishSpec};
use crate::template::RenderError;
use crate::webhook::{self, WebhookSpec};
use crate::workflow::{self, WorkflowSpec};

/// What an action does when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handler {
    /// A signed HTTP request to another system.
    Webhook(WebhookSpec),
    /// A templated API request.
    Http(HttpSpec),
    /// An email over SMTP.
    Email(EmailSpec),
    /// A new event for the same tenant on `herald.events`, so that actions can chain.
    Publish(PublishSpec),
    /// A line in the executor's log: for trying actions out.
    Log(LogSpec),
    /// Steps of the other types, run in the order their dependencies give.
    Workflow(WorkflowSpec),
}

impl Handler {
    /// The handler types, as `handler.type` names them.
    pub const TYPES: [&'static str; 6] = ["webhook", "http", "email", "publish", "log", "workflow"];

    /// Checks a handler as an action gives it, naming the field of anything wrong.
    pub fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("handler", "must be an object"));
        };
        match map.get("type").and_then(Json::as_str) {
            Some("webhook") => webhook::parse(map).map(Self::Webhook),
            Some("http") => http::parse(map).map(Self::Http),
            Some("email") => email::parse(map).map(Self::Email),
            Some("publish") => publish::parse(map).map(Self::Publish),
            Some("log") => log::parse(map).map(Self::Log),
            Some("workflow") => workflow::parse(map).map(Self::Workflow),
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
    pub fn schemas() -> [(&'static str, Value); 6] {
        [
            ("webhook", webhook::schema()),
            ("http", http::schema()),
            ("email", email::schema()),
            ("publish", publish::schema()),
            ("log", log::schema()),
            ("workflow", workflow::schema()),
        ]
    }

    /// The handler as reads show it: credentials masked; signing secrets in full only when
    /// `reveal_secrets` (the answer that created them).
    pub fn view(&self, reveal_secrets: bool) -> Value {
        match self {
            Self::Webhook(spec) => webhook::view(spec, reveal_secrets),
            Self::Http(spec) => http::view(spec, reveal_secrets),
            Self::Email(spec) => email::view(spec),
            Self::Publish(spec) => publish::view(spec),
            Self::Log(spec) => log::view(spec),
            Self::Workflow(spec) => workflow::view(spec, reveal_secrets),
        }
    }

    /// The destination it sends to (`scheme://host:port`), for circuits and per-destination
    /// limits; `None` for handlers that reach nothing outside.
    pub fn destination(&self) -> Option<&str> {
        match self {
            Self::Webhook(spec) => Some(&spec.endpoint),
            Self::Http(spec) => Some(&spec.endpoint),
            Self::Email(spec) => Some(&spec.endpoint),
            Self::Publish(_) | Self::Log(_) | Self::Workflow(_) => None,
        }
    }

    /// Whether a test send (`POST /v1/actions/{id}/test` with `send`) may make one real
    /// attempt of it: one that only sends a request, and changes nothing in Herald.
    pub fn can_be_tried(&self) -> bool {
        matches!(self, Self::Webhook(_) | Self::Http(_) | Self::Email(_))
    }

    /// The tenant secrets its templates use (`secrets.NAME`), each with the first field that
    /// does: the ones an attempt opens, and that must exist when the action is saved.
    pub fn secret_uses(&self) -> Vec<(&str, &str)> {
        if let Self::Workflow(spec) = self {
            let mut uses: Vec<(&str, &str)> = spec.handlers().flat_map(Self::secret_uses).collect();
            for step in &spec.steps {
                uses.extend(
                    step.templates
                        .secrets()
                        .iter()
                        .map(|(name, field)| (name.as_str(), field.as_str())),
                );
            }
            let mut seen = std::collections::BTreeSet::new();
            uses.retain(|(name, _)| seen.insert(*name));
            return uses;
        }
        let Some(templates) = self.templates() else {
            return Vec::new();
        };
        templates
            .secrets()
            .iter()
            .map(|(name, field)| (name.as_str(), field.as_str()))
            .collect()
    }

    /// Its compiled templates, for the types that have them (a workflow's are its steps').
    pub fn templates(&self) -> Option<&crate::template::Templates> {
        match self {
            Self::Webhook(spec) => Some(&spec.body.templates),
            Self::Http(spec) => Some(&spec.templates),
            Self::Email(spec) => Some(&spec.templates),
            Self::Publish(_) | Self::Log(_) | Self::Workflow(_) => None,
        }
    }

    /// The workflow's settings, for a handler that is one.
    pub fn workflow(&self) -> Option<&WorkflowSpec> {
        match self {
            Self::Workflow(spec) => Some(spec),
            _ => None,
        }
    }

    /// The names of the tenant secrets its templates use.
    pub fn secret_names(&self) -> Vec<&str> {
        self.secret_uses()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// The webhook's settings, for a handler that is one.
    pub fn webhook(&self) -> Option<&WebhookSpec> {
        match self {
            Self::Webhook(spec) => Some(spec),
            _ => None,
        }
    }

    /// What an attempt would do, every template rendered, nothing sent: the request (or the
    /// event, the log line) with credentials and secrets masked. An error names the template
    /// that does not render (its message masked too: it may quote what was rendered).
    pub fn preview(&self, ctx: &Context<'_>) -> Result<Value, RenderError> {
        self.render_preview(ctx).map_err(|mut error| {
            error.message = crate::credentials::scrub(&error.message, &ctx.secret_values()).into();
            error
        })
    }

    fn render_preview(&self, ctx: &Context<'_>) -> Result<Value, RenderError> {
        match self {
            Self::Webhook(spec) => {
                let payload = webhook::payload(spec, &ctx.job.event, || ctx.render_context())?;
                let request = webhook::build(
                    ctx.job.delivery_id(),
                    payload,
                    spec,
                    ctx.now.timestamp(),
                    None,
                );
                Ok(json!({"request": request.preview(&ctx.secret_values())}))
            }
            Self::Http(spec) => {
                let prepared = http::prepare(spec, ctx)?;
                let credentials: Vec<&str> =
                    prepared.credentials.iter().map(String::as_str).collect();
                let mut request = prepared.request.preview(&credentials);
                if let Some(token) = &prepared.token {
                    request["headers"]["authorization"] = json!(crate::credentials::MASK);
                    request["token_url"] = json!(token.token_url.as_str());
                }
                Ok(json!({"request": request}))
            }
            Self::Email(spec) => {
                let rendered = email::render(spec, ctx)?;
                let mut secrets = ctx.secret_values();
                if let Some((_, password)) =
                    rendered.relay.as_ref().and_then(|r| r.credentials.as_ref())
                {
                    secrets.push(password);
                }
                Ok(json!({"email": rendered.preview(&secrets)}))
            }
            Self::Publish(spec) => Ok(json!({"publish": publish::view(spec)})),
            Self::Log(spec) => Ok(json!({"log": log::view(spec)})),
            Self::Workflow(spec) => Ok(json!({"workflow": workflow::dry_run(spec, ctx)})),
        }
    }

    /// Makes one attempt.
    pub async fn execute(&self, ctx: &Context<'_>) -> Performed {
        match self {
            Self::Webhook(spec) => webhook::execute(spec, ctx).await,
            Self::Http(spec) => http::execute(spec, ctx).await,
            Self::Email(spec) => email::execute(spec, ctx).await,
            Self::Publish(spec) => publish::execute(spec, ctx).await,
            Self::Log(spec) => log::execute(spec, ctx).await,
            // A run is driven step by step by the executor, never as one attempt.
            Self::Workflow(_) => Performed::failed(
                "workflow".into(),
                herald_common::status::ErrorKind::Request,
                "a workflow runs step by step, not as one attempt".into(),
                std::time::Duration::ZERO,
            ),
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
            Self::Http(_) => "http",
            Self::Email(_) => "email",
            Self::Publish(_) => "publish",
            Self::Log(_) => "log",
            Self::Workflow(_) => "workflow",
        }
    }

    fn keep_stored(&mut self, stored: Option<&Self>) -> Result<(), ActionError> {
        match self {
            Self::Webhook(spec) => webhook::keep_stored(spec, stored.and_then(Self::webhook)),
            Self::Http(spec) => http::keep_stored(
                spec,
                match stored {
                    Some(Self::Http(stored)) => Some(stored),
                    _ => None,
                },
            ),
            Self::Email(spec) => email::keep_stored(
                spec,
                match stored {
                    Some(Self::Email(stored)) => Some(stored),
                    _ => None,
                },
            ),
            Self::Workflow(spec) => workflow::keep_stored(
                spec,
                match stored {
                    Some(Self::Workflow(stored)) => Some(stored),
                    _ => None,
                },
            ),
            Self::Publish(_) | Self::Log(_) => Ok(()),
        }
    }
}
