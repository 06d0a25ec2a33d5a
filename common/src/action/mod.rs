//! The action: what a tenant configures to run when a matching event arrives.
//!
//! [`ActionSpec`] is the contract's JSON shape. Parsing it validates everything that can be
//! checked without the rest of the system (patterns, condition shapes, retry policy, handler),
//! and every error names the offending field so API callers can fix their input.
//!
//! The handler is a type parameter: the handler types, their parsing, views and execution are
//! the handler crate's (`herald-handlers`), so that the store and the matching engine, which
//! only carry or skip a handler, never depend on them. [`HandlerSpec`] is what the store needs
//! of one; [`Unread`] stands for a handler left unread (the matcher needs none).

mod fields;
mod matching;
mod retry;

use std::fmt;

use serde::de::{Deserialize, DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Serialize, Serializer};

pub use fields::reject_unknown;
pub use matching::{
    ActionMatching, ActionMode, MAX_ACTION_NAME_LEN, MAX_PATTERNS, Priority, validate_pattern,
};
pub use retry::{Backoff, MAX_ATTEMPTS_LIMIT, MAX_DELAY_S, RetryPolicy};

use crate::json_tree::Json;

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

/// How the store reads a handler from its stored JSON (once unsealed).
pub trait ReadHandler: Sized {
    /// Whether the stored handler is unsealed and read at all ([`Unread`] skips it, and the
    /// cost of opening a million sealed handlers with it).
    const READ: bool = true;

    fn read(plain: serde_json::Value) -> Result<Self, serde_json::Error>;
}

/// What the store needs of a handler, whatever its type.
pub trait HandlerSpec:
    Serialize + DeserializeOwned + ReadHandler + Clone + PartialEq + fmt::Debug + Send + Sync + 'static
{
    /// Its type's name, as `handler.type` gives it (and `actions.handler_type` stores it).
    fn kind(&self) -> &'static str;

    /// Carries over from the handler as stored (`None` for a new action) what a write may
    /// leave out or send back masked, as a read showed it. Fails, naming the field, when the
    /// write refers to a stored value there is none of.
    fn keep_stored(&mut self, stored: Option<&Self>) -> Result<(), ActionError>;
}

/// A handler left unread: loads that need only what matches (the matcher's) skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Self)
    }
}

impl ReadHandler for Unread {
    const READ: bool = false;

    fn read(_: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(Self)
    }
}

impl Serialize for Unread {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_none()
    }
}

/// A validated action definition, as stored (ids and timestamps live on the record), with its
/// handler of type `H`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionSpec<H> {
    #[serde(flatten)]
    pub matching: ActionMatching,
    pub description: Option<String>,
    pub handler: H,
    pub rate_limit_per_s: Option<u32>,
    pub max_concurrency: Option<u32>,
    /// Starts, for an event, only once every execution of it with a lower priority number
    /// has ended.
    pub after_lower_priorities: bool,
    /// With `after_lower_priorities`: cancelled if any of them did not succeed.
    pub requires_success: bool,
}

/// Longest action description.
const MAX_DESCRIPTION_LEN: usize = 2000;

impl<H> ActionSpec<H> {
    /// Validates an action read into a [`Json`] tree, its handler with `handler` (the
    /// handler crate's parser, given the `handler` member).
    pub fn from_json(
        value: &Json<'_>,
        handler: impl FnOnce(&Json<'_>) -> Result<H, ActionError>,
    ) -> Result<Self, ActionError> {
        let matching = ActionMatching::from_json(value)?;
        let Json::Object(map) = value else {
            return Err(ActionError::new("$", "an action must be a JSON object"));
        };
        let description = fields::optional_string(map, "description", MAX_DESCRIPTION_LEN)?;
        let handler = match map.get("handler") {
            Some(v) => handler(v)?,
            None => return Err(ActionError::new("handler", "is required")),
        };
        let flag = |key: &str| match map.get(key) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err(ActionError::new(key, "must be true or false")),
        };
        let after_lower_priorities = flag("after_lower_priorities")?;
        let requires_success = flag("requires_success")?;
        if requires_success && !after_lower_priorities {
            return Err(ActionError::new(
                "requires_success",
                "applies only with after_lower_priorities: true (it says what to do when an \
                 earlier action of the event failed)",
            ));
        }
        Ok(Self {
            matching,
            description,
            handler,
            rate_limit_per_s: fields::optional_positive(map, "rate_limit_per_s", 100_000)?,
            max_concurrency: fields::optional_positive(map, "max_concurrency", 10_000)?,
            after_lower_priorities,
            requires_success,
        })
    }

    /// Wildcard event-type patterns and regex (`matches`) conditions: the parts that cost the
    /// matcher a scan instead of a lookup, counted against a per-tenant budget.
    pub fn costly_parts(&self) -> usize {
        self.matching.costly_parts()
    }
}

impl<H: HandlerSpec> ActionSpec<H> {
    /// Carries over from the action as stored what this write left out or sent masked (see
    /// [`HandlerSpec::keep_stored`]).
    pub fn keep_stored(&mut self, stored: Option<&Self>) -> Result<(), ActionError> {
        self.handler.keep_stored(stored.map(|s| &s.handler))
    }
}

#[cfg(test)]
mod tests;
