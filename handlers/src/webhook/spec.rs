//! A webhook's settings: parsed and checked once (when the action is saved, or read back from
//! the database), and carried as typed values from then on.

use std::collections::BTreeMap;

use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::{Json, Object};
use serde::{Deserialize, Serialize};

use crate::body::BodyTemplate;
use crate::destination::{endpoint_of, parse_url};
use crate::headers;
use crate::signing::{self, Secret};
use crate::template::{Builder, Templates};
use crate::transport::Method;

/// Longest allowed timeout.
pub const MAX_TIMEOUT_MS: u32 = 60_000;
const DEFAULT_TIMEOUT_MS: u32 = 15_000;

/// Where the webhook goes and how it is signed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct WebhookSpec {
    pub url: url::Url,
    pub method: Method,
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: u32,
    /// Signing secrets, newest first.
    pub secrets: Vec<Secret>,
    /// `scheme://host:port` of `url`, the key of its circuit.
    pub endpoint: String,
    /// What it sends instead of the standard envelope, if anything (still signed).
    pub body: WebhookBody,
    /// The write gave no secret and one was made up: a stored one is kept instead, if any
    /// (see `view::keep_stored`). Not stored.
    pub(super) secret_generated: bool,
}

/// Two webhooks are the same when they are written the same (the typed parts follow).
impl PartialEq for WebhookSpec {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.method == other.method
            && self.headers == other.headers
            && self.timeout_ms == other.timeout_ms
            && self.secrets == other.secrets
            && self.body.source == other.body.source
    }
}

/// The stored (and read) shape.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    url: String,
    #[serde(default = "default_method")]
    method: Method,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
    secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    form: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

/// The body fields a webhook may have.
const BODY_FIELDS: [&str; 3] = ["body", "form", "content_type"];

/// A webhook's body template, when it replaces the envelope.
#[derive(Clone)]
pub struct WebhookBody {
    pub template: Option<BodyTemplate>,
    /// Its templates (none without a body template).
    pub templates: Templates,
    /// The body's part of the handler as written (`body`, `form`, `content_type`).
    pub(super) source: serde_json::Map<String, serde_json::Value>,
}

/// A webhook's body template from the body fields of its handler.
fn parse_body(map: &Object<'_>) -> Result<WebhookBody, ActionError> {
    let mut builder = Builder::new();
    let template = BodyTemplate::parse(map, &mut builder)?;
    let source = BODY_FIELDS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), map.get(key)?.to_value())))
        .collect();
    Ok(WebhookBody {
        template,
        templates: builder.finish(),
        source,
    })
}

fn default_method() -> Method {
    Method::Post
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

/// What a webhook is made of, besides its body.
struct Parts {
    url: url::Url,
    method: Method,
    headers: BTreeMap<String, String>,
    timeout_ms: u32,
    secrets: Vec<Secret>,
}

impl WebhookSpec {
    fn new(parts: Parts, body: WebhookBody) -> Self {
        Self {
            endpoint: endpoint_of(&parts.url),
            url: parts.url,
            method: parts.method,
            headers: parts.headers,
            timeout_ms: parts.timeout_ms,
            secrets: parts.secrets,
            body,
            secret_generated: false,
        }
    }
}

/// A stored webhook is decoded as it was validated; a secret that no longer decodes is an
/// error here (the action cannot be loaded), never a signature silently left out.
impl TryFrom<Stored> for WebhookSpec {
    type Error = String;

    fn try_from(stored: Stored) -> Result<Self, String> {
        let url = url::Url::parse(&stored.url).map_err(|e| format!("url: {e}"))?;
        let secrets = stored
            .secrets
            .iter()
            .map(|s| Secret::parse(s).map_err(|e| format!("secrets: {e}")))
            .collect::<Result<_, _>>()?;
        let body_fields = serde_json::json!({"body": stored.body, "form": stored.form,
                                             "content_type": stored.content_type});
        let body_fields: serde_json::Map<String, serde_json::Value> = body_fields
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let body_fields = serde_json::Value::Object(body_fields);
        let Json::Object(map) = Json::from_value(&body_fields) else {
            return Err("body: not an object".into());
        };
        let body = parse_body(&map).map_err(|e| e.to_string())?;
        let parts = Parts {
            url,
            method: stored.method,
            headers: stored.headers,
            timeout_ms: stored.timeout_ms,
            secrets,
        };
        Ok(Self::new(parts, body))
    }
}

impl From<WebhookSpec> for Stored {
    fn from(spec: WebhookSpec) -> Self {
        Self {
            url: spec.url.to_string(),
            method: spec.method,
            headers: spec.headers,
            timeout_ms: spec.timeout_ms,
            secrets: spec.secrets.iter().map(|s| s.text().to_owned()).collect(),
            body: spec.body.source.get("body").cloned(),
            form: spec.body.source.get("form").cloned(),
            content_type: spec
                .body
                .source
                .get("content_type")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }
    }
}

impl std::fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets and header values (credentials among them) never reach logs.
        f.debug_struct("WebhookSpec")
            .field("url", &self.url.as_str())
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout_ms", &self.timeout_ms)
            .field("body_template", &self.body.template.is_some())
            .field(
                "secrets",
                &format_args!("[{} redacted]", self.secrets.len()),
            )
            .finish()
    }
}

/// Checks a `webhook` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<WebhookSpec, ActionError> {
    let allowed = [
        "type",
        "url",
        "method",
        "headers",
        "timeout_ms",
        "secret",
        "secrets",
        "body",
        "form",
        "content_type",
    ];
    reject_unknown(map, &allowed, "handler")?;
    let url_text = map
        .get("url")
        .and_then(Json::as_str)
        .ok_or_else(|| ActionError::new("handler.url", "is required and must be a string"))?;
    let url = parse_url("handler.url", url_text)?;
    let method = match map.get("method") {
        None => Method::Post,
        Some(Json::Str(m)) => Method::parse(m)
            .filter(|m| matches!(m, Method::Post | Method::Put | Method::Patch))
            .ok_or_else(|| ActionError::new("handler.method", "must be POST, PUT or PATCH"))?,
        Some(_) => {
            return Err(ActionError::new(
                "handler.method",
                "must be POST, PUT or PATCH",
            ));
        }
    };
    let headers = headers::parse("handler.headers", map.get("headers"))?;
    let timeout_ms = match map.get("timeout_ms") {
        None => DEFAULT_TIMEOUT_MS,
        Some(v) => v
            .as_u64()
            .filter(|n| (100..=u64::from(MAX_TIMEOUT_MS)).contains(n))
            .ok_or_else(|| {
                ActionError::new(
                    "handler.timeout_ms",
                    format!("must be from 100 to {MAX_TIMEOUT_MS} milliseconds"),
                )
            })? as u32,
    };
    let (secrets, generated) = signing::parse_secrets(map)?;
    let body = parse_body(map)?;
    let parts = Parts {
        url,
        method,
        headers,
        timeout_ms,
        secrets,
    };
    let mut spec = WebhookSpec::new(parts, body);
    spec.secret_generated = generated;
    Ok(spec)
}
