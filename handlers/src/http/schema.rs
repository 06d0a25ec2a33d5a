//! The `http` handler's JSON Schema: the OpenAPI document's, and the console's form is drawn
//! from it.

use serde_json::{Value, json};

use super::AUTH_TYPES;
use crate::destination::MAX_URL_LEN;
use crate::headers::{MAX_HEADER_VALUE_LEN, MAX_HEADERS};
use crate::signing::MAX_SECRETS;
use crate::webhook::MAX_TIMEOUT_MS;

pub fn schema() -> Value {
    let template = "A template: {{ event.data.x }}, {{ secrets.NAME }}, filters, {% if %}.";
    json!({
        "type": "object",
        "title": "API request",
        "description": "A templated HTTP request to any API (Slack, Twilio, SendGrid, a CRM, your \
                        own services). The scheme, host and port of `url` are fixed; templates \
                        may fill its path and query, the headers and the body.",
        "required": ["type", "url"],
        "additionalProperties": false,
        "x-herald-summary": ["method", "url"],
        "properties": {
            "type": {"const": "http"},
            "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                       "default": "POST", "title": "Method"},
            "url": {"type": "string", "maxLength": MAX_URL_LEN, "title": "URL",
                    "examples": ["https://api.example.com/customers/{{ event.data.customer_id }}/notes"],
                    "description": "Values interpolated in the path are percent-encoded (`| safe` \
                                    keeps them as they are)."},
            "query": {"type": "object", "additionalProperties": {"type": "string"},
                      "title": "Query parameters", "description": template},
            "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_LEN},
                        "title": "Headers",
                        "description": "Templates. Credential-like values (authorization, cookie, \
                                        *token*, *key*, *secret*, *password*) read back as \"***\"; \
                                        writing \"***\" keeps the stored value."},
            "body": {"type": ["object", "array", "string"], "title": "Body",
                     "description": "A JSON template (an object or array whose strings are \
                                     templates; a string that is exactly one {{ expression }} \
                                     keeps its JSON type) or a text template (a string)."},
            "form": {"type": "object", "additionalProperties": {"type": "string"},
                     "title": "Form fields",
                     "description": "Instead of body: sent as application/x-www-form-urlencoded."},
            "content_type": {"type": "string", "maxLength": 256, "title": "Content type",
                             "description": "Of the body: application/json for a JSON \
                                             template, text/plain for a text one, by default."},
            "auth": {"title": "Authentication", "oneOf": [
                {"type": "object", "required": ["type", "token"], "additionalProperties": false,
                 "properties": {"type": {"const": "bearer"}, "token": {"type": "string"}}},
                {"type": "object", "required": ["type", "username", "password"],
                 "additionalProperties": false,
                 "properties": {"type": {"const": "basic"}, "username": {"type": "string"},
                                "password": {"type": "string"}}},
                {"type": "object", "required": ["type", "token_url", "client_id", "client_secret"],
                 "additionalProperties": false,
                 "properties": {"type": {"const": "oauth2_client_credentials"},
                                "token_url": {"type": "string", "format": "uri"},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                                "scope": {"type": "string"}, "audience": {"type": "string"},
                                "client_auth": {"enum": ["basic", "body"], "default": "basic"}}}],
                     "x-herald-auth-types": AUTH_TYPES,
                     "type": "object",
                     "description": "bearer (token), basic (username, password) or \
                                     oauth2_client_credentials (a token fetched from token_url, \
                                     cached until it expires). Credentials may be templates \
                                     ({{ secrets.NAME }}) and read back as \"***\"."},
            "success_codes": {"type": "array", "items": {"type": "integer", "minimum": 100,
                                                         "maximum": 599},
                              "maxItems": 32, "title": "Success statuses",
                              "description": "2xx when not given; other answers are retried \
                                              or failed as a webhook's are."},
            "sign": {"type": "boolean", "default": false, "title": "Sign (Standard Webhooks)"},
            "timeout_ms": {"type": "integer", "minimum": 100, "maximum": MAX_TIMEOUT_MS,
                           "default": 10000, "title": "Timeout (ms)"},
            "secret": {"type": "string", "pattern": "^whsec_", "writeOnly": true,
                       "title": "Signing secret (with sign)",
                       "description": "`whsec_<base64>`; one is generated when signing without \
                                       one."},
            "secrets": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SECRETS,
                        "x-herald-form": false,
                        "description": "Every active signing secret, newest first; reads show \
                                        their last characters."}
        }
    })
}
