//! What reads show of an `http` handler (credentials as the mask, signing secrets by their last
//! characters), and what a write that sends a read back keeps.

use herald_common::action::ActionError;
use herald_common::json_tree::Json;
use serde_json::{Value, json};

use super::HttpSpec;
use super::auth::CREDENTIALS;
use crate::credentials;
use crate::signing;

/// The handler as reads show it.
pub fn view(spec: &HttpSpec, reveal_secrets: bool) -> Value {
    let mut shown = credentials::masked(&spec.source, &CREDENTIALS);
    shown["type"] = json!("http");
    if let Some(secrets) = &spec.signing {
        shown["secrets"] = secrets
            .iter()
            .map(|s| Value::from(signing::shown(s, reveal_secrets)))
            .collect();
    }
    shown
}

/// Keeps what a write left to the stored handler: each credential sent back as the mask, and
/// the signing secrets when it signs and gave none.
pub fn keep_stored(spec: &mut HttpSpec, stored: Option<&HttpSpec>) -> Result<(), ActionError> {
    let mut source = spec.source.clone();
    credentials::restore_masked(&mut source, stored.map(|s| &s.source), &CREDENTIALS)?;
    if spec.secret_generated
        && let Some(kept) = stored.and_then(|s| s.signing.as_ref())
    {
        source["secrets"] = kept.iter().map(|s| Value::from(s.text())).collect();
    }
    if source != spec.source {
        let Json::Object(map) = Json::from_value(&source) else {
            return Ok(());
        };
        *spec = super::parse(&map)?;
    }
    Ok(())
}
