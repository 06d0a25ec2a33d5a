//! What reads show of a webhook, and what a write that sends a read back keeps: credential
//! headers are shown as the mask, signing secrets by their last characters (in full only in
//! the answer that created them).

use crate::credentials::{self, MASK};
use crate::signing;
use herald_common::action::ActionError;
use herald_common::json_tree::At;
use serde_json::{Value, json};

use super::WebhookSpec;

/// The webhook as reads show it.
pub fn view(spec: &WebhookSpec, reveal_secrets: bool) -> Value {
    let headers: serde_json::Map<String, Value> = spec
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if credentials::is_credential_header(name) {
                MASK
            } else {
                value
            };
            (name.clone(), json!(shown))
        })
        .collect();
    let secrets: Vec<String> = spec
        .secrets
        .iter()
        .map(|secret| signing::shown(secret, reveal_secrets))
        .collect();
    let mut shown = json!({
        "type": "webhook",
        "url": spec.url.as_str(),
        "method": spec.method,
        "headers": headers,
        "timeout_ms": spec.timeout_ms,
        "secrets": secrets,
    });
    for (key, value) in &spec.body.source {
        shown[key] = value.clone();
    }
    shown
}

/// Keeps what a write left to the stored webhook: its secrets when the write gave none, and
/// the stored value of each header sent back as the mask. A masked header without a stored
/// value is refused: there is nothing to keep.
pub fn keep_stored(
    spec: &mut WebhookSpec,
    stored: Option<&WebhookSpec>,
) -> Result<(), ActionError> {
    if spec.secret_generated
        && let Some(stored) = stored
    {
        spec.secrets = stored.secrets.clone();
        spec.secret_generated = false;
    }
    for (name, value) in &mut spec.headers {
        if value != MASK {
            continue;
        }
        match stored.and_then(|s| s.headers.get(name)) {
            Some(kept) => kept.clone_into(value),
            None => {
                return Err(ActionError::new(
                    At::Root("handler.headers").key(name),
                    format!(
                        "{MASK:?} stands for the stored value, and there is none: send the value"
                    ),
                ));
            }
        }
    }
    Ok(())
}
