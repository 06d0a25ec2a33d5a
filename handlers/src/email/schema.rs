//! The `email` handler's JSON Schema.

use serde_json::{Value, json};

use super::MAX_RECIPIENTS;
use crate::webhook::MAX_TIMEOUT_MS;

pub fn schema() -> Value {
    let addresses = json!({"type": "array", "items": {"type": "string"},
                           "maxItems": MAX_RECIPIENTS});
    json!({
        "type": "object",
        "title": "Email",
        "description": "An email over SMTP, every field a template. Through the action's own \
                        server (smtp) or the operator's default relay (executor.smtp). An SMTP \
                        4xx answer or a failed connection is retried on the action's schedule; \
                        a 5xx answer fails at once, the server's words recorded.",
        "required": ["type", "from", "to", "subject"],
        "additionalProperties": false,
        "x-herald-summary": ["to", "subject"],
        "properties": {
            "type": {"const": "email"},
            "smtp": {"type": "object", "title": "SMTP server (empty: the default relay)",
                     "required": ["host"], "additionalProperties": false,
                     "properties": {
                         "host": {"type": "string"},
                         "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                                  "description": "465 for tls, 587 for starttls, 25 for none"},
                         "security": {"enum": ["starttls", "tls", "none"], "default": "starttls",
                                      "description": "none only to allow-listed destinations"},
                         "username": {"type": "string"},
                         "password": {"type": "string",
                                      "description": "A template ({{ secrets.NAME }}); reads show \"***\""}}},
            "from": {"type": "string", "title": "From", "examples": ["Billing <billing@example.com>"]},
            "to": addresses.clone(),
            "cc": addresses.clone(),
            "bcc": addresses,
            "reply_to": {"type": ["string", "null"], "title": "Reply-To"},
            "subject": {"type": "string", "title": "Subject",
                        "examples": ["Receipt for order {{ event.data.order_id }}"]},
            "text": {"type": ["string", "null"], "title": "Text body"},
            "html": {"type": ["string", "null"], "title": "HTML body",
                     "description": "Values are HTML-escaped (| safe opts out)."},
            "timeout_ms": {"type": "integer", "minimum": 100, "maximum": MAX_TIMEOUT_MS,
                           "default": 30000, "title": "Timeout (ms)"}
        }
    })
}
