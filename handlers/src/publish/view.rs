//! What reads show of a publish handler: all of it (nothing in it is a credential).

use serde_json::{Value, json};

use super::PublishSpec;

pub fn view(spec: &PublishSpec) -> Value {
    let mut shown = json!(spec);
    shown["type"] = json!("publish");
    shown
}
