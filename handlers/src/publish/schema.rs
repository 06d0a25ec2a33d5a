//! The publish handler's JSON Schema.

use herald_common::event::MAX_NAME_LEN;
use serde_json::{Value, json};

pub fn schema() -> Value {
    json!({
        "type": "object",
        "title": "Chained event",
        "description": "Publishes a new event of `event_type` for the same tenant, carrying the \
                        triggering event's data and metadata, so that actions can chain (at \
                        most 8 deep).",
        "required": ["type", "event_type"],
        "additionalProperties": false,
        "x-herald-summary": ["event_type"],
        "properties": {
            "type": {"const": "publish"},
            "event_type": {"type": "string", "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$",
                           "maxLength": MAX_NAME_LEN, "title": "Chained event type"},
            "source": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_NAME_LEN,
                       "title": "Source (optional; the triggering event's by default)"}
        }
    })
}
