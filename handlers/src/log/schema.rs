//! The log handler's JSON Schema.

use serde_json::{Value, json};

pub fn schema() -> Value {
    json!({
        "type": "object",
        "title": "Log line",
        "description": "Writes the event to the executor's log: for trying actions out.",
        "required": ["type"],
        "additionalProperties": false,
        "x-herald-summary": ["level"],
        "properties": {
            "type": {"const": "log"},
            "level": {"enum": ["info", "warn"], "default": "info", "title": "Log level"}
        }
    })
}
