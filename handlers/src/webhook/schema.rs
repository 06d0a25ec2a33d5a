//! The webhook's JSON Schema: the OpenAPI document's, and the console's form is drawn from it.

use serde_json::{Value, json};

use super::MAX_TIMEOUT_MS;
use crate::destination::MAX_URL_LEN;
use crate::headers::{MAX_HEADER_VALUE_LEN, MAX_HEADERS};
use crate::signing::MAX_SECRETS;

pub fn schema() -> Value {
    json!({
        "type": "object",
        "title": "Signed webhook",
        "description": "POSTs the event as `{id, type, source, timestamp, data, metadata}` with \
                        Standard Webhooks headers, signed with every active secret.",
        "required": ["type", "url"],
        "additionalProperties": false,
        "x-herald-summary": ["method", "url"],
        "properties": {
            "type": {"const": "webhook"},
            "url": {"type": "string", "format": "uri", "maxLength": MAX_URL_LEN,
                    "title": "Webhook URL", "examples": ["https://example.com/hook"]},
            "method": {"enum": ["POST", "PUT", "PATCH"], "default": "POST", "title": "Method"},
            "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_LEN},
                        "title": "Webhook headers",
                        "description": "Sent with every delivery. Credential-like values \
                                        (authorization, cookie, *token*, *key*, *secret*, \
                                        *password*) read back as \"***\"; writing \"***\" \
                                        keeps the stored value."},
            "timeout_ms": {"type": "integer", "minimum": 100, "maximum": MAX_TIMEOUT_MS,
                           "default": 15000, "title": "Timeout (ms)"},
            "secret": {"type": "string", "pattern": "^whsec_", "writeOnly": true,
                       "title": "Signing secret",
                       "description": "`whsec_<base64>`; one is generated when none is given, \
                                       and a write without one keeps the stored ones."},
            "body": {"type": ["object", "array", "string"], "title": "Body template (optional)",
                     "description": "Replaces the standard envelope (still signed): a JSON \
                                     template (strings are templates; exactly one \
                                     {{ expression }} keeps its JSON type) or a text template."},
            "form": {"type": "object", "additionalProperties": {"type": "string"},
                     "title": "Form fields (instead of body)"},
            "content_type": {"type": "string", "maxLength": 256, "title": "Body content type"},
            "secrets": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SECRETS,
                        "x-herald-form": false,
                        "description": "Every active secret, newest first (several while one \
                                        rotates); reads show their last characters."}
        }
    })
}
