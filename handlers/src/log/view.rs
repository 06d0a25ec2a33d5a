//! What reads show of a log handler: all of it.

use serde_json::{Value, json};

use super::LogSpec;

pub fn view(spec: &LogSpec) -> Value {
    json!({"type": "log", "level": spec.level})
}
