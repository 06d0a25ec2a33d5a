//! A chained event's type and source, checked when the action is saved.

use herald_common::action::{ActionError, reject_unknown};
use herald_common::event::{EventType, MAX_NAME_LEN};
use herald_common::json_tree::{Json, Object};
use serde::{Deserialize, Serialize};

/// Chained events carry their depth in this metadata key; past [`MAX_CHAIN_DEPTH`] a publish
/// fails, so that actions publishing the events that trigger them cannot loop forever.
pub const CHAIN_DEPTH_KEY: &str = "herald_chain_depth";
pub const MAX_CHAIN_DEPTH: u32 = 8;

/// Emits an event of `event_type` (and `source`, when given) carrying the triggering event's
/// `data` and `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishSpec {
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Checks a `publish` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<PublishSpec, ActionError> {
    reject_unknown(map, &["type", "event_type", "source"], "handler")?;
    let event_type = map
        .get("event_type")
        .and_then(Json::as_str)
        .ok_or_else(|| {
            ActionError::new("handler.event_type", "is required and must be a string")
        })?;
    let event_type = EventType::parse(event_type)
        .map_err(|e| ActionError::new("handler.event_type", e.message))?;
    let source = match map.get("source") {
        None => None,
        Some(Json::Str(s)) if !s.is_empty() && s.len() <= MAX_NAME_LEN => {
            Some(s.as_ref().to_owned())
        }
        Some(_) => {
            return Err(ActionError::new(
                "handler.source",
                format!("must be a string of 1 to {MAX_NAME_LEN} bytes"),
            ));
        }
    };
    Ok(PublishSpec { event_type, source })
}
