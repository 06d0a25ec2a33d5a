//! What decides whether, and in which order, an action matches: its name, event-type patterns,
//! source, conditions, priority, mode, retry policy and whether it is enabled.

use serde::{Deserialize, Serialize};

use super::ActionError;
use super::fields::optional_string;
use super::retry::RetryPolicy;
use crate::condition::{Condition, parse_conditions};
use crate::json_tree::{At, Json};

/// Dispatch priority: lower runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub i32);

impl Priority {
    pub const CRITICAL: Priority = Priority(10);
    pub const HIGH: Priority = Priority(50);
    pub const NORMAL: Priority = Priority(100);
    pub const LOW: Priority = Priority(200);

    pub(super) fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
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

/// Wildcard event-type patterns and regex (`matches`) conditions: the parts that cost the
/// matcher a scan instead of a lookup, counted against a per-tenant budget.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
            "after_lower_priorities",
            "requires_success",
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
