//! The action: what a tenant configures to run when a matching event arrives.
//!
//! `ActionSpec` is the contract's JSON shape. Parsing it validates everything that can be
//! checked without the rest of the system (patterns, condition shapes, retry policy, handler),
//! and every error names the offending field so API callers can fix their input.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::condition::{Condition, parse_conditions};
use crate::credentials;
use crate::json_tree::{At, Json, Object};

/// A validation problem with an action: `field` is a dotted path into the submitted JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ActionError {
    pub field: String,
    pub message: String,
}

impl ActionError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Dispatch priority: lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub i32);

impl Priority {
    pub const CRITICAL: Priority = Priority(10);
    pub const HIGH: Priority = Priority(50);
    pub const NORMAL: Priority = Priority(100);
    pub const LOW: Priority = Priority(200);

    fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        match value {
            Json::Number(n) => n
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .map(Priority)
                .ok_or_else(|| ActionError::new("priority", "must be a 32-bit integer")),
            Json::Str(word) => match word.as_ref() {
                "critical" => Ok(Self::CRITICAL),
                "high" => Ok(Self::HIGH),
                "normal" => Ok(Self::NORMAL),
                "low" => Ok(Self::LOW),
                _ => Err(ActionError::new(
                    "priority",
                    "must be an integer or one of critical, high, normal, low",
                )),
            },
            _ => Err(ActionError::new(
                "priority",
                "must be an integer or a priority word",
            )),
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

/// Whether the publisher waits for the action's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionMode {
    #[default]
    Async,
    Sync,
}

/// Backoff shapes for [`RetryPolicy::Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Linear,
    Fixed,
}

/// When to try again after a retryable failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryPolicy {
    Delays {
        max_attempts: u32,
        delays_s: Vec<u32>,
    },
    Backoff {
        max_attempts: u32,
        backoff: Backoff,
        initial_s: u32,
        max_s: u32,
        #[serde(default)]
        jitter: f64,
    },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::Delays {
            max_attempts: 5,
            delays_s: vec![30, 60, 300, 900, 3600],
        }
    }
}

/// Most attempts an action may ask for; keeps a misconfiguration from retrying for weeks.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest single retry delay, one day.
pub const MAX_DELAY_S: u32 = 86_400;

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::Delays { max_attempts, .. } | Self::Backoff { max_attempts, .. } => *max_attempts,
        }
    }

    /// The longest delay this policy can produce: the ceiling for `Retry-After`.
    pub fn max_delay_s(&self) -> u32 {
        match self {
            Self::Delays { delays_s, .. } => delays_s.iter().copied().max().unwrap_or(0),
            Self::Backoff { max_s, .. } => *max_s,
        }
    }

    fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("retry", "must be an object"));
        };
        let max_attempts = match map.get("max_attempts") {
            None => 5,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(n))
                .ok_or_else(|| {
                    ActionError::new(
                        "retry.max_attempts",
                        format!("must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}"),
                    )
                })? as u32,
        };
        let delay =
            |field: At<'_>, v: Option<&Json<'_>>, default: u32| -> Result<u32, ActionError> {
                let Some(v) = v else {
                    return Ok(default);
                };
                v.as_u64()
                    .filter(|n| *n <= u64::from(MAX_DELAY_S))
                    .map(|n| n as u32)
                    .ok_or_else(|| {
                        ActionError::new(
                            field,
                            format!("must be a whole number of seconds from 0 to {MAX_DELAY_S}"),
                        )
                    })
            };
        if let Some(backoff) = map.get("backoff") {
            let allowed = ["max_attempts", "backoff", "initial_s", "max_s", "jitter"];
            reject_unknown(map, &allowed, "retry")?;
            let backoff = match backoff.as_str() {
                Some("exponential") => Backoff::Exponential,
                Some("linear") => Backoff::Linear,
                Some("fixed") => Backoff::Fixed,
                _ => {
                    return Err(ActionError::new(
                        "retry.backoff",
                        "must be exponential, linear or fixed",
                    ));
                }
            };
            let retry = At::Root("retry");
            let initial_s = delay(retry.key("initial_s"), map.get("initial_s"), 30)?;
            let max_s = delay(retry.key("max_s"), map.get("max_s"), 3600)?;
            if max_s < initial_s {
                return Err(ActionError::new(
                    "retry.max_s",
                    "must be at least initial_s",
                ));
            }
            let jitter = match map.get("jitter") {
                None => 0.0,
                Some(v) => v
                    .as_f64()
                    .filter(|j| (0.0..=1.0).contains(j))
                    .ok_or_else(|| {
                        ActionError::new("retry.jitter", "must be a number from 0 to 1")
                    })?,
            };
            return Ok(Self::Backoff {
                max_attempts,
                backoff,
                initial_s,
                max_s,
                jitter,
            });
        }
        reject_unknown(map, &["max_attempts", "delays_s"], "retry")?;
        let delays_s = match map.get("delays_s") {
            None => vec![30, 60, 300, 900, 3600],
            Some(Json::Array(items)) if !items.is_empty() && items.len() <= 100 => items
                .iter()
                .enumerate()
                .map(|(i, v)| delay(At::Root("retry.delays_s").index(i), Some(v), 0))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ActionError::new(
                    "retry.delays_s",
                    "must be a list of 1 to 100 delays in seconds",
                ));
            }
        };
        Ok(Self::Delays {
            max_attempts,
            delays_s,
        })
    }
}

/// Where the webhook goes and how it is signed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookHandler {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
    /// Signing secrets, newest first. More than one while a secret rotates: every delivery
    /// then carries one signature per secret.
    pub secrets: Vec<String>,
}

impl WebhookHandler {
    /// The headers as reads show them: credentials masked (see [`crate::credentials`]).
    pub fn shown_headers(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .map(|(name, value)| {
                let shown = if credentials::is_credential_header(name) {
                    credentials::MASK.to_owned()
                } else {
                    value.clone()
                };
                (name.clone(), shown)
            })
            .collect()
    }

    /// Puts back the stored value of each header sent as [`credentials::MASK`] (what a read
    /// showed), from `previous`; a masked header that `previous` does not have is refused,
    /// since there is no value to keep.
    pub fn restore_masked(&mut self, previous: Option<&WebhookHandler>) -> Result<(), ActionError> {
        for (name, value) in &mut self.headers {
            if value != credentials::MASK {
                continue;
            }
            match previous.and_then(|p| p.headers.get(name)) {
                Some(stored) => stored.clone_into(value),
                None => {
                    return Err(ActionError::new(
                        At::Root("handler.headers").key(name),
                        format!(
                            "{:?} stands for the stored value, and there is none: send the value",
                            credentials::MASK
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for WebhookHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets never reach logs.
        f.debug_struct("WebhookHandler")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("timeout_ms", &self.timeout_ms)
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .finish()
    }
}

fn default_method() -> String {
    "POST".into()
}

fn default_timeout_ms() -> u32 {
    15_000
}

/// Longest webhook URL: what HTTP servers commonly accept on a request line.
pub const MAX_URL_LEN: usize = 8192;
/// Most headers of a webhook's own.
pub const MAX_HEADERS: usize = 64;
/// Longest value of a webhook header: servers refuse larger header sections (431).
pub const MAX_HEADER_VALUE_LEN: usize = 8192;

/// Longest allowed webhook timeout.
pub const MAX_TIMEOUT_MS: u32 = 60_000;

/// What an action does when it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Handler {
    /// A signed HTTP request to another system.
    Webhook(WebhookHandler),
    /// A new event for the same tenant on `herald.events`, so that actions can chain.
    Publish(PublishHandler),
    /// A line in the executor's log: for trying actions out.
    Log(LogHandler),
}

/// The handler types, as `handler.type` names them.
pub const HANDLER_TYPES: [&str; 3] = ["webhook", "publish", "log"];

impl Handler {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook(_) => "webhook",
            Self::Publish(_) => "publish",
            Self::Log(_) => "log",
        }
    }

    pub fn webhook(&self) -> Option<&WebhookHandler> {
        match self {
            Self::Webhook(hook) => Some(hook),
            _ => None,
        }
    }

    fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("handler", "must be an object"));
        };
        match map.get("type").and_then(Json::as_str) {
            Some("webhook") => Ok(Self::Webhook(parse_webhook(map)?)),
            Some("publish") => Ok(Self::Publish(parse_publish(map)?)),
            Some("log") => Ok(Self::Log(parse_log(map)?)),
            Some(other) => Err(ActionError::new(
                "handler.type",
                format!(
                    "unknown handler type {other:?}; known: {}",
                    HANDLER_TYPES.join(", ")
                ),
            )),
            None => Err(ActionError::new("handler.type", "is required")),
        }
    }
}

/// Chained events carry their depth in this metadata key; past [`MAX_CHAIN_DEPTH`] a publish
/// fails, so that actions publishing the events that trigger them cannot loop forever.
pub const CHAIN_DEPTH_KEY: &str = "herald_chain_depth";
pub const MAX_CHAIN_DEPTH: u32 = 8;

/// Emits an event of `event_type` (and `source`, when given) carrying the triggering event's
/// `data` and `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishHandler {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn parse_publish(map: &Object<'_>) -> Result<PublishHandler, ActionError> {
    reject_unknown(map, &["type", "event_type", "source"], "handler")?;
    let event_type = map
        .get("event_type")
        .and_then(Json::as_str)
        .ok_or_else(|| {
            ActionError::new("handler.event_type", "is required and must be a string")
        })?;
    crate::event::EventType::parse(event_type)
        .map_err(|e| ActionError::new("handler.event_type", e.message))?;
    let source = match map.get("source") {
        None => None,
        Some(Json::Str(s)) if !s.is_empty() && s.len() <= crate::event::MAX_NAME_LEN => {
            Some(s.as_ref().to_owned())
        }
        Some(_) => {
            return Err(ActionError::new(
                "handler.source",
                format!(
                    "must be a string of 1 to {} bytes",
                    crate::event::MAX_NAME_LEN
                ),
            ));
        }
    };
    Ok(PublishHandler {
        event_type: event_type.to_owned(),
        source,
    })
}

/// How loud a `log` action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
}

/// Logs the event (id, type, source, data) at `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogHandler {
    #[serde(default)]
    pub level: LogLevel,
}

fn parse_log(map: &Object<'_>) -> Result<LogHandler, ActionError> {
    reject_unknown(map, &["type", "level"], "handler")?;
    let level = match map.get("level").map(|v| v.as_str()) {
        None => LogLevel::Info,
        Some(Some("info")) => LogLevel::Info,
        Some(Some("warn")) => LogLevel::Warn,
        Some(_) => {
            return Err(ActionError::new(
                "handler.level",
                "must be \"info\" or \"warn\"",
            ));
        }
    };
    Ok(LogHandler { level })
}

fn parse_webhook(map: &Object<'_>) -> Result<WebhookHandler, ActionError> {
    let allowed = [
        "type",
        "url",
        "method",
        "headers",
        "timeout_ms",
        "secret",
        "secrets",
    ];
    reject_unknown(map, &allowed, "handler")?;
    let url_text = map
        .get("url")
        .and_then(Json::as_str)
        .ok_or_else(|| ActionError::new("handler.url", "is required and must be a string"))?;
    if url_text.len() > MAX_URL_LEN {
        return Err(ActionError::new(
            "handler.url",
            format!("must be at most {MAX_URL_LEN} bytes (the HTTP client refuses longer)"),
        ));
    }
    let url = url::Url::parse(url_text)
        .map_err(|e| ActionError::new("handler.url", format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ActionError::new(
            "handler.url",
            "must be an http or https URL with a host",
        ));
    }
    if let Some(url::Host::Domain(name)) = url.host()
        && (name.len() > 253 || name.split('.').any(|label| label.len() > 63))
    {
        // No resolver answers for it: every attempt would fail.
        return Err(ActionError::new(
            "handler.url",
            "has a host name longer than DNS allows (253 characters, 63 per label)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ActionError::new(
            "handler.url",
            "must not carry credentials; use handler.headers",
        ));
    }
    let method = match map.get("method") {
        None => default_method(),
        Some(Json::Str(m)) if ["POST", "PUT", "PATCH"].contains(&m.to_uppercase().as_str()) => {
            m.to_uppercase()
        }
        Some(_) => {
            return Err(ActionError::new(
                "handler.method",
                "must be POST, PUT or PATCH",
            ));
        }
    };
    let headers = match map.get("headers") {
        None => BTreeMap::new(),
        Some(Json::Object(h)) => {
            if h.len() > MAX_HEADERS {
                return Err(ActionError::new(
                    "handler.headers",
                    format!("may hold at most {MAX_HEADERS} headers"),
                ));
            }
            let mut headers = BTreeMap::new();
            for (name, value) in h.iter() {
                let field = At::Root("handler.headers");
                let field = field.key(name);
                let Json::Str(value) = value else {
                    return Err(ActionError::new(field, "must be a string"));
                };
                let lower = name.to_ascii_lowercase();
                if reqwest_header_name_is_invalid(&lower) {
                    return Err(ActionError::new(field, "is not a valid header name"));
                }
                if is_reserved_header(&lower) {
                    return Err(ActionError::new(
                        field,
                        "is set by Herald and cannot be overridden",
                    ));
                }
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(ActionError::new(field, "must not contain line breaks"));
                }
                if value.len() > MAX_HEADER_VALUE_LEN {
                    return Err(ActionError::new(
                        field,
                        format!("must be at most {MAX_HEADER_VALUE_LEN} bytes"),
                    ));
                }
                headers.insert(lower, value.as_ref().to_owned());
            }
            headers
        }
        Some(_) => {
            return Err(ActionError::new(
                "handler.headers",
                "must be an object of strings",
            ));
        }
    };
    let timeout_ms = match map.get("timeout_ms") {
        None => default_timeout_ms(),
        Some(v) => v
            .as_u64()
            .filter(|t| (100..=u64::from(MAX_TIMEOUT_MS)).contains(t))
            .ok_or_else(|| {
                ActionError::new(
                    "handler.timeout_ms",
                    format!("must be from 100 to {MAX_TIMEOUT_MS} milliseconds"),
                )
            })? as u32,
    };
    let mut secrets = Vec::new();
    if let Some(v) = map.get("secret") {
        secrets.push(parse_secret(At::Root("handler.secret"), v)?);
    }
    if let Some(v) = map.get("secrets") {
        let Json::Array(items) = v else {
            return Err(ActionError::new(
                "handler.secrets",
                "must be a list of secrets",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            secrets.push(parse_secret(At::Root("handler.secrets").index(i), item)?);
        }
    }
    if secrets.len() > 5 {
        return Err(ActionError::new(
            "handler.secrets",
            "at most 5 secrets may be active at once",
        ));
    }
    if secrets.is_empty() {
        // Signing on every webhook: an action without a secret gets a fresh one.
        secrets.push(crate::signing::generate_secret());
    }
    Ok(WebhookHandler {
        url: url.to_string(),
        method,
        headers,
        timeout_ms,
        secrets,
    })
}

fn parse_secret(field: At<'_>, value: &Json<'_>) -> Result<String, ActionError> {
    let text = value
        .as_str()
        .ok_or_else(|| ActionError::new(field, "must be a string"))?;
    crate::signing::SigningKey::from_secret(text)
        .map_err(|e| ActionError::new(field, e.to_string()))?;
    Ok(text.to_owned())
}

fn reqwest_header_name_is_invalid(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_reserved_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "host"
            | "user-agent"
            | "traceparent"
            | "tracestate"
            | "transfer-encoding"
            | "connection"
    ) || name.starts_with("webhook-")
}

fn reject_unknown(map: &Object<'_>, allowed: &[&str], prefix: &str) -> Result<(), ActionError> {
    match map.keys().find(|k| !allowed.contains(k)) {
        Some(key) => Err(ActionError::new(
            format!("{prefix}.{key}"),
            "is not a known field",
        )),
        None => Ok(()),
    }
}

/// A validated action definition, as stored (ids and timestamps live on the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionSpec {
    pub name: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub source: Option<String>,
    pub conditions: Vec<Condition>,
    pub priority: Priority,
    pub mode: ActionMode,
    pub handler: Handler,
    pub retry: RetryPolicy,
    pub rate_limit_per_s: Option<u32>,
    pub max_concurrency: Option<u32>,
    pub enabled: bool,
}

/// Longest action name.
pub const MAX_ACTION_NAME_LEN: usize = 200;
/// Most event-type patterns on one action.
pub const MAX_PATTERNS: usize = 100;

/// Checks one event-type pattern: segments of `[A-Za-z0-9_-]`, or a lone `*` or `#`.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > crate::event::MAX_NAME_LEN {
        return Err("must be 1 to 255 characters".into());
    }
    for segment in pattern.split('.') {
        let ok = segment == "*"
            || segment == "#"
            || (!segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        if !ok {
            return Err(format!(
                "{pattern:?} is not a valid pattern: use segments of [A-Za-z0-9_-], `*` for one \
                 segment or `#` for any number, separated by single dots"
            ));
        }
    }
    Ok(())
}

impl ActionSpec {
    /// Keeps the stored credentials that a write sent back masked, as a read showed them
    /// (see [`WebhookHandler::restore_masked`]); `previous` is the action as stored, if any.
    pub fn restore_masked(&mut self, previous: Option<&ActionSpec>) -> Result<(), ActionError> {
        match &mut self.handler {
            Handler::Webhook(hook) => {
                hook.restore_masked(previous.and_then(|p| p.handler.webhook()))
            }
            _ => Ok(()),
        }
    }

    /// Wildcard event-type patterns and regex (`matches`) conditions: the parts that cost the
    /// matcher a scan instead of a lookup, counted against a per-tenant budget.
    pub fn costly_parts(&self) -> usize {
        costly_parts(&self.event_types, &self.conditions)
    }

    /// Parses and validates the contract's JSON for an action.
    pub fn parse(value: &Value) -> Result<Self, ActionError> {
        Self::from_json(&Json::from_value(value))
    }

    /// Parses and validates an action from JSON text.
    pub fn parse_str(text: &str) -> Result<Self, ActionError> {
        let json = Json::parse(text)
            .map_err(|e| ActionError::new("$", format!("is not valid JSON: {e}")))?;
        Self::from_json(&json)
    }

    /// Validates an action already read into a [`Json`] tree.
    pub fn from_json(value: &Json<'_>) -> Result<Self, ActionError> {
        let matching = ActionMatching::from_json(value)?;
        let Json::Object(map) = value else {
            return Err(ActionError::new("$", "an action must be a JSON object"));
        };
        let description = optional_string(map, "description", 2000)?;
        let handler = match map.get("handler") {
            Some(v) => Handler::parse(v)?,
            None => return Err(ActionError::new("handler", "is required")),
        };
        let rate_limit_per_s = optional_positive(map, "rate_limit_per_s", 100_000)?;
        let max_concurrency = optional_positive(map, "max_concurrency", 10_000)?;
        let ActionMatching {
            name,
            event_types,
            source,
            conditions,
            priority,
            mode,
            retry,
            enabled,
        } = matching;
        Ok(Self {
            name,
            description,
            event_types,
            source,
            conditions,
            priority,
            mode,
            handler,
            retry,
            rate_limit_per_s,
            max_concurrency,
            enabled,
        })
    }
}

fn costly_parts(event_types: &[String], conditions: &[Condition]) -> usize {
    let wildcards = event_types
        .iter()
        .filter(|p| p.split('.').any(|s| s == "*" || s == "#"))
        .count();
    wildcards + conditions.iter().map(Condition::regexes).sum::<usize>()
}

/// The parts of an action that decide whether, and in which order, it matches: what a
/// matcher reads when it loads actions that were fully validated when they were saved. The
/// handler, description and limits are not read (the API checks them on every save).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionMatching {
    pub name: String,
    pub event_types: Vec<String>,
    pub source: Option<String>,
    pub conditions: Vec<Condition>,
    pub priority: Priority,
    pub mode: ActionMode,
    pub retry: RetryPolicy,
    pub enabled: bool,
}

impl ActionMatching {
    /// Wildcard patterns and regex conditions, as [`ActionSpec::costly_parts`].
    pub fn costly_parts(&self) -> usize {
        costly_parts(&self.event_types, &self.conditions)
    }

    /// Validates the matching parts of an action, and that it has no unknown fields.
    pub fn from_json(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("$", "an action must be a JSON object"));
        };
        let allowed = [
            "name",
            "description",
            "event_types",
            "source",
            "conditions",
            "priority",
            "mode",
            "handler",
            "retry",
            "rate_limit_per_s",
            "max_concurrency",
            "enabled",
        ];
        if let Some(key) = map.keys().find(|k| !allowed.contains(k)) {
            return Err(ActionError::new(key, "is not a known field"));
        }
        let name = match map.get("name") {
            Some(Json::Str(n)) if !n.trim().is_empty() && n.len() <= MAX_ACTION_NAME_LEN => {
                n.as_ref().to_owned()
            }
            Some(_) => {
                return Err(ActionError::new(
                    "name",
                    format!("must be a non-empty string of at most {MAX_ACTION_NAME_LEN} bytes"),
                ));
            }
            None => return Err(ActionError::new("name", "is required")),
        };
        let event_types = match map.get("event_types") {
            Some(Json::Array(items)) if !items.is_empty() && items.len() <= MAX_PATTERNS => {
                let mut patterns = Vec::with_capacity(items.len());
                let root = At::Root("event_types");
                for (i, item) in items.iter().enumerate() {
                    let field = root.index(i);
                    let text = item
                        .as_str()
                        .ok_or_else(|| ActionError::new(field, "must be a string"))?;
                    validate_pattern(text).map_err(|m| ActionError::new(field, m))?;
                    patterns.push(text.to_owned());
                }
                patterns
            }
            Some(_) => {
                return Err(ActionError::new(
                    "event_types",
                    format!("must be a list of 1 to {MAX_PATTERNS} patterns"),
                ));
            }
            None => return Err(ActionError::new("event_types", "is required")),
        };
        let source = optional_string(map, "source", crate::event::MAX_NAME_LEN)?;
        let conditions = match map.get("conditions") {
            None | Some(Json::Null) => Vec::new(),
            Some(v) => parse_conditions(v)?,
        };
        let priority = match map.get("priority") {
            None | Some(Json::Null) => Priority::default(),
            Some(v) => Priority::parse(v)?,
        };
        let mode = match map.get("mode") {
            None | Some(Json::Null) => ActionMode::default(),
            Some(v) => match v.as_str() {
                Some("async") => ActionMode::Async,
                Some("sync") => ActionMode::Sync,
                _ => return Err(ActionError::new("mode", "must be async or sync")),
            },
        };
        let retry = match map.get("retry") {
            None | Some(Json::Null) => RetryPolicy::default(),
            Some(v) => RetryPolicy::parse(v)?,
        };
        let enabled = match map.get("enabled") {
            None | Some(Json::Null) => true,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(ActionError::new("enabled", "must be true or false")),
        };
        Ok(Self {
            name,
            event_types,
            source,
            conditions,
            priority,
            mode,
            retry,
            enabled,
        })
    }
}

fn optional_string(
    map: &Object<'_>,
    key: &str,
    max_len: usize,
) -> Result<Option<String>, ActionError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) if s.len() <= max_len => Ok(Some(s.as_ref().to_owned())),
        Some(_) => Err(ActionError::new(
            key,
            format!("must be a string of at most {max_len} bytes"),
        )),
    }
}

fn optional_positive(map: &Object<'_>, key: &str, max: u64) -> Result<Option<u32>, ActionError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .map(|n| Some(n as u32))
            .ok_or_else(|| ActionError::new(key, format!("must be an integer from 1 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "name": "notify-billing",
            "event_types": ["payment_intent.succeeded", "invoice.*"],
            "handler": {"type": "webhook", "url": "https://example.com/hook",
                        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
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
                "handler": {"type": "webhook", "url": "https://example.com/hook",
                    "method": "PUT", "headers": {"x-a": "b"}, "timeout_ms": 1000,
                    "secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx"]},
                "retry": {"backoff": "exponential", "initial_s": 1, "max_s": 60, "jitter": 0.2},
                "rate_limit_per_s": 5, "max_concurrency": 2, "enabled": false}),
            with("retry", json!({"max_attempts": 3, "delays_s": [1, 2]})),
            with("handler", json!({"type": "log", "level": "warn"})),
            with("handler", json!({"type": "publish", "event_type": "x.y"})),
        ];
        for example in examples {
            let spec = ActionSpec::parse(&example).unwrap_or_else(|e| panic!("{example}: {e}"));
            let stored = serde_json::to_value(&spec).unwrap();
            let again = ActionSpec::parse(&stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
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
            "handler": {"type": "webhook", "url": "https://example.com/hook", "method": "POST",
                        "headers": {"x-team": "billing"}, "timeout_ms": 15000,
                        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            "retry": {"max_attempts": 5, "delays_s": [30, 60, 300, 900, 3600]},
            "rate_limit_per_s": 50, "max_concurrency": 10, "enabled": true
        });
        let spec = ActionSpec::parse(&example).unwrap();
        assert_eq!(spec.priority, Priority(100));
        assert_eq!(spec.conditions.len(), 2);
        assert_eq!(spec.retry.max_attempts(), 5);
        let hook = spec.handler.webhook().unwrap();
        assert_eq!(hook.headers["x-team"], "billing");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let mut v = base();
        v["handler"].as_object_mut().unwrap().remove("secret");
        let spec = ActionSpec::parse(&v).unwrap();
        assert_eq!(spec.priority, Priority::NORMAL);
        assert_eq!(spec.mode, ActionMode::Async);
        assert_eq!(spec.retry, RetryPolicy::default());
        assert!(spec.enabled);
        let hook = spec.handler.webhook().unwrap();
        assert_eq!(hook.method, "POST");
        assert_eq!(
            hook.secrets.len(),
            1,
            "a secret is generated when none is given"
        );
        assert!(hook.secrets[0].starts_with("whsec_"));
    }

    #[test]
    fn priority_words() {
        for (word, value) in [
            ("critical", 10),
            ("high", 50),
            ("normal", 100),
            ("low", 200),
        ] {
            let spec = ActionSpec::parse(&with("priority", json!(word))).unwrap();
            assert_eq!(spec.priority, Priority(value));
        }
    }

    #[test]
    fn backoff_policy_parses() {
        let v = with(
            "retry",
            json!({"max_attempts": 3, "backoff": "exponential", "initial_s": 1, "max_s": 60, "jitter": 0.2}),
        );
        let spec = ActionSpec::parse(&v).unwrap();
        assert_eq!(spec.retry.max_attempts(), 3);
        assert_eq!(spec.retry.max_delay_s(), 60);
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
            (
                with("handler", json!({"type": "carrier-pigeon"})),
                "handler.type",
            ),
            (
                with("handler", json!({"type": "webhook", "url": "ftp://x"})),
                "handler.url",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://u:p@x"}),
                ),
                "handler.url",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://x", "secret": "nope"}),
                ),
                "handler.secret",
            ),
            // Past what the HTTP client, DNS or a receiver can take: refused at save rather
            // than failed at every attempt.
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": format!("https://x/{}", "p".repeat(8192))}),
                ),
                "handler.url",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": format!("https://{}.com/", "a".repeat(64))}),
                ),
                "handler.url",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook",
                           "url": format!("https://{}com/", "a.".repeat(127))}),
                ),
                "handler.url",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://x",
                           "headers": (0..65).map(|i| (format!("x-h{i}"), json!("v")))
                               .collect::<serde_json::Map<_, _>>()}),
                ),
                "handler.headers",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://x",
                           "headers": {"x-big": "v".repeat(8193)}}),
                ),
                "handler.headers.x-big",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://x", "headers": {"webhook-id": "x"}}),
                ),
                "handler.headers.webhook-id",
            ),
            (
                with(
                    "handler",
                    json!({"type": "webhook", "url": "https://x", "timeout_ms": 5}),
                ),
                "handler.timeout_ms",
            ),
            (with("rate_limit_per_s", json!(0)), "rate_limit_per_s"),
            (with("colour", json!("blue")), "colour"),
            (
                with("handler", json!({"type": "publish"})),
                "handler.event_type",
            ),
            (
                with("handler", json!({"type": "publish", "event_type": "a..b"})),
                "handler.event_type",
            ),
            (
                with(
                    "handler",
                    json!({"type": "publish", "event_type": "a.b", "source": ""}),
                ),
                "handler.source",
            ),
            (
                with(
                    "handler",
                    json!({"type": "publish", "event_type": "a.b", "url": "https://x"}),
                ),
                "handler.url",
            ),
            (
                with("handler", json!({"type": "log", "level": "debug"})),
                "handler.level",
            ),
        ];
        for (value, field) in cases {
            let err = ActionSpec::parse(&value).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn every_handler_type_parses() {
        let publish = ActionSpec::parse(&with(
            "handler",
            json!({"type": "publish", "event_type": "invoice.chained", "source": "herald"}),
        ))
        .unwrap();
        assert_eq!(
            publish.handler,
            Handler::Publish(PublishHandler {
                event_type: "invoice.chained".into(),
                source: Some("herald".into()),
            })
        );
        let log = ActionSpec::parse(&with("handler", json!({"type": "log"}))).unwrap();
        assert_eq!(
            log.handler,
            Handler::Log(LogHandler {
                level: LogLevel::Info
            })
        );
        for spec in [publish, log] {
            assert!(spec.handler.webhook().is_none());
            let stored = serde_json::to_value(&spec.handler).unwrap();
            assert_eq!(stored["type"], spec.handler.kind());
            let back: Handler = serde_json::from_value(stored).unwrap();
            assert_eq!(back, spec.handler);
        }
    }

    #[test]
    fn text_and_values_parse_alike_and_matching_parts_skip_the_handler() {
        let text = base().to_string();
        assert_eq!(
            ActionSpec::parse_str(&text).unwrap().handler,
            ActionSpec::parse(&base()).unwrap().handler
        );
        assert_eq!(ActionSpec::parse_str("{nope").unwrap_err().field, "$");
        let mut bad_handler = base();
        bad_handler["handler"]["url"] = json!("ftp://x");
        let json = Json::from_value(&bad_handler);
        assert!(ActionSpec::from_json(&json).is_err());
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

    #[test]
    fn debug_output_hides_secrets() {
        let spec = ActionSpec::parse(&base()).unwrap();
        let text = format!("{spec:?}");
        assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{text}");
    }
}
