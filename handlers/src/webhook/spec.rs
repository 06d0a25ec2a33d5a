//! A webhook's settings: parsed and checked once (when the action is saved, or read back from
//! the database), and carried as typed values from then on.

use std::collections::BTreeMap;

use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::{At, Json, Object};
use serde::{Deserialize, Serialize};

use crate::destination::{endpoint_of, parse_url};
use crate::headers;
use crate::http::Method;
use crate::signing::Secret;

/// Longest allowed timeout.
pub const MAX_TIMEOUT_MS: u32 = 60_000;
/// Most secrets active at once (while one rotates, several sign every delivery).
pub const MAX_SECRETS: usize = 5;
const DEFAULT_TIMEOUT_MS: u32 = 15_000;

/// Where the webhook goes and how it is signed.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    /// The write gave no secret and one was made up: a stored one is kept instead, if any
    /// (see `view::keep_stored`). Not stored.
    pub(super) secret_generated: bool,
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
}

fn default_method() -> Method {
    Method::Post
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

impl WebhookSpec {
    fn new(
        url: url::Url,
        method: Method,
        headers: BTreeMap<String, String>,
        timeout_ms: u32,
        secrets: Vec<Secret>,
    ) -> Self {
        Self {
            endpoint: endpoint_of(&url),
            url,
            method,
            headers,
            timeout_ms,
            secrets,
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
        Ok(Self::new(
            url,
            stored.method,
            stored.headers,
            stored.timeout_ms,
            secrets,
        ))
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
    let mut secrets = Vec::new();
    if let Some(v) = map.get("secret") {
        secrets.push(parse_secret(At::Root("handler.secret"), v)?);
    }
    if let Some(v) = map.get("secrets") {
        let Json::Array(items) = v else {
            return Err(ActionError::new(
                "handler.secrets",
                "must be a list of secrets",
            ));
        };
        for (i, item) in items.iter().enumerate() {
            secrets.push(parse_secret(At::Root("handler.secrets").index(i), item)?);
        }
    }
    if secrets.len() > MAX_SECRETS {
        return Err(ActionError::new(
            "handler.secrets",
            format!("at most {MAX_SECRETS} secrets may be active at once"),
        ));
    }
    let generated = secrets.is_empty();
    if generated {
        // Signing on every webhook: an action without a secret gets a fresh one.
        secrets.push(Secret::generate());
    }
    let mut spec = WebhookSpec::new(url, method, headers, timeout_ms, secrets);
    spec.secret_generated = generated;
    Ok(spec)
}

fn parse_secret(field: At<'_>, value: &Json<'_>) -> Result<Secret, ActionError> {
    let text = value
        .as_str()
        .ok_or_else(|| ActionError::new(field, "must be a string"))?;
    Secret::parse(text).map_err(|e| ActionError::new(field, e.to_string()))
}
