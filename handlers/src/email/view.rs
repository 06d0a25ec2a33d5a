//! What reads show of an `email` handler (the SMTP password as the mask), and what a write
//! that sends a read back keeps.

use herald_common::action::ActionError;
use herald_common::json_tree::Json;
use serde_json::{Value, json};

use super::EmailSpec;
use crate::credentials;

/// The JSON pointers of an `email` handler's credentials.
const CREDENTIALS: [&str; 1] = ["/smtp/password"];

/// The handler as reads show it.
pub fn view(spec: &EmailSpec) -> Value {
    let mut shown = credentials::masked(&spec.source, &CREDENTIALS);
    shown["type"] = json!("email");
    shown
}

/// Keeps the stored SMTP password where a write sent the mask back.
pub fn keep_stored(spec: &mut EmailSpec, stored: Option<&EmailSpec>) -> Result<(), ActionError> {
    let mut source = spec.source.clone();
    credentials::restore_masked(&mut source, stored.map(|s| &s.source), &CREDENTIALS)?;
    if source != spec.source {
        let Json::Object(map) = Json::from_value(&source) else {
            return Ok(());
        };
        *spec = super::parse(&map)?;
    }
    Ok(())
}
