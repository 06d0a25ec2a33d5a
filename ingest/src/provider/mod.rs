//! Inbound provider webhooks: what a tenant registers about a provider that sends it webhooks
//! (how its deliveries are signed, where their event type is), and the pure checks of a
//! delivery's signature.
//!
//! Verification takes the current time as an argument, so every scheme is table-tested here.
//! A delivery is refused unless one of its signatures was made with the provider's secret over
//! exactly the bytes received; signatures are compared in constant time.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use herald_common::event::{EventType, MAX_NAME_LEN};
use herald_handlers::signing::SigningKey;

mod verify;

pub use verify::{VerifyError, verify};

/// Longest accepted provider name, in bytes (as for actions).
pub const MAX_PROVIDER_NAME_LEN: usize = 200;
/// Longest accepted secret, in bytes.
pub const MAX_SECRET_LEN: usize = 1024;
/// The timestamp tolerance unless the provider sets one: what Stripe's and the Standard
/// Webhooks libraries use.
pub const DEFAULT_TOLERANCE_S: u32 = 300;
/// The largest tolerance accepted: a day.
pub const MAX_TOLERANCE_S: u32 = 86_400;
/// Where a plain HMAC signature is unless the provider names another header.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-signature";
/// Longest accepted type prefix, in bytes (the whole type must still fit in an event type).
const MAX_TYPE_PREFIX_LEN: usize = 100;

/// A validation problem with a provider: `field` names the offending field of the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProviderError {
    pub field: String,
    pub message: String,
}

impl ProviderError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How a provider signs its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// <https://www.standardwebhooks.com>: `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature` (`v1,<base64>`, space-separated); the secret is `whsec_<base64>`.
    StandardWebhooks,
    /// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of `{t}.{body}` keyed
    /// with the secret's bytes.
    Stripe,
    /// `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the body; no timestamp.
    GitHub,
    /// `<signature_header>: [sha256=]<hex>`, HMAC-SHA256 of the body; no timestamp.
    HmacSha256 { signature_header: String },
}

impl Scheme {
    pub const NAMES: [&'static str; 4] = ["standard_webhooks", "stripe", "github", "hmac_sha256"];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::StandardWebhooks => "standard_webhooks",
            Self::Stripe => "stripe",
            Self::GitHub => "github",
            Self::HmacSha256 { .. } => "hmac_sha256",
        }
    }

    /// Whether the signature covers a timestamp, so a tolerance applies.
    pub fn has_timestamp(&self) -> bool {
        matches!(self, Self::StandardWebhooks | Self::Stripe)
    }

    /// The header a plain HMAC signature is read from.
    pub fn signature_header(&self) -> Option<&str> {
        match self {
            Self::HmacSha256 { signature_header } => Some(signature_header),
            _ => None,
        }
    }

    /// Rebuilds a scheme from its name (and the header, for plain HMAC), as stored.
    pub fn from_parts(name: &str, signature_header: Option<String>) -> Option<Self> {
        Some(match name {
            "standard_webhooks" => Self::StandardWebhooks,
            "stripe" => Self::Stripe,
            "github" => Self::GitHub,
            "hmac_sha256" => Self::HmacSha256 {
                signature_header: signature_header
                    .unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.to_owned()),
            },
            _ => return None,
        })
    }
}

/// Where a delivery's event type is found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTypeFrom {
    /// A dotted path into the JSON body, such as `type` or `event.kind`.
    Field(String),
    /// A request header, such as `x-github-event` (stored lowercase).
    Header(String),
}

impl EventTypeFrom {
    /// The value found in a delivery, if it is there and a string.
    pub fn find<'a>(&self, headers: &'a HeaderMap, body: &'a Value) -> Option<&'a str> {
        match self {
            Self::Header(name) => headers.get(name.as_str())?.to_str().ok(),
            Self::Field(path) => path
                .split('.')
                .try_fold(body, |value, key| value.get(key))?
                .as_str(),
        }
    }
}

/// A provider as a tenant registers it. Its `Debug` output leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub name: String,
    pub scheme: Scheme,
    pub secret: String,
    /// Seconds a signed timestamp may differ from now, either way; `None` for schemes without
    /// a timestamp, and `Some(0)` turns the check off (as Stripe's libraries read 0).
    pub tolerance_s: Option<u32>,
    pub event_type: EventTypeFrom,
    pub type_prefix: Option<String>,
    /// The events' `source`; `None` means the provider's name.
    pub source: Option<String>,
}

impl std::fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.name)
            .field("scheme", &self.scheme)
            .field("secret", &"redacted")
            .field("tolerance_s", &self.tolerance_s)
            .field("event_type", &self.event_type)
            .field("type_prefix", &self.type_prefix)
            .field("source", &self.source)
            .finish()
    }
}

const FIELDS: [&str; 8] = [
    "name",
    "scheme",
    "secret",
    "tolerance_s",
    "event_type",
    "type_prefix",
    "source",
    "signature_header",
];

impl ProviderSpec {
    /// Checks a `POST /v1/providers` body; every error names its field.
    pub fn parse(value: &Value) -> Result<Self, ProviderError> {
        let Value::Object(map) = value else {
            return Err(ProviderError::new("body", "must be a JSON object"));
        };
        if let Some(key) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ProviderError::new(key.as_str(), "is not a known field"));
        }
        let name = parse_name(map.get("name"))?;
        let scheme = parse_scheme(map.get("scheme"), map.get("signature_header"))?;
        let secret = parse_secret(&scheme, map.get("secret"))?;
        let tolerance_s = parse_tolerance(&scheme, map.get("tolerance_s"))?;
        let event_type = parse_event_type(map.get("event_type"))?;
        let type_prefix = parse_type_prefix(map.get("type_prefix"))?;
        let source = parse_source(map.get("source"))?;
        Ok(Self {
            name,
            scheme,
            secret,
            tolerance_s,
            event_type,
            type_prefix,
            source,
        })
    }

    /// The `source` of this provider's events.
    pub fn event_source(&self) -> &str {
        self.source.as_deref().unwrap_or(&self.name)
    }

    /// The event type of a delivery: the configured prefix and the value found.
    pub fn event_type_of(&self, headers: &HeaderMap, body: &Value) -> Option<String> {
        let found = self.event_type.find(headers, body)?;
        Some(format!(
            "{}{found}",
            self.type_prefix.as_deref().unwrap_or("")
        ))
    }

    /// The provider's own id of a delivery, which a retried delivery repeats: the event's id,
    /// so a redelivery is deduplicated. `None` when the scheme carries none.
    pub fn delivery_id(&self, headers: &HeaderMap, body: &Value) -> Option<String> {
        let text = match self.scheme {
            Scheme::StandardWebhooks => headers.get("webhook-id")?.to_str().ok()?,
            Scheme::GitHub => headers.get("x-github-delivery")?.to_str().ok()?,
            Scheme::Stripe => body.get("id")?.as_str()?,
            Scheme::HmacSha256 { .. } => return None,
        };
        Some(text.to_owned())
    }

    /// Checks a delivery's signature (and timestamp, for schemes that sign one) at `now`
    /// (Unix seconds).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify(
            &self.scheme,
            &self.secret,
            self.tolerance_s.unwrap_or(0),
            headers,
            body,
            now,
        )
    }
}

fn parse_name(value: Option<&Value>) -> Result<String, ProviderError> {
    match value {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= MAX_PROVIDER_NAME_LEN => {
            Ok(n.clone())
        }
        Some(_) => Err(ProviderError::new(
            "name",
            format!("must be a non-empty string of at most {MAX_PROVIDER_NAME_LEN} bytes"),
        )),
        None => Err(ProviderError::new("name", "is required")),
    }
}

fn parse_scheme(
    value: Option<&Value>,
    signature_header: Option<&Value>,
) -> Result<Scheme, ProviderError> {
    let known = Scheme::NAMES.join(", ");
    let name = match value {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => {
            return Err(ProviderError::new(
                "scheme",
                format!("must be one of {known}"),
            ));
        }
        None => return Err(ProviderError::new("scheme", "is required")),
    };
    let header = match signature_header {
        None => None,
        Some(_) if name != "hmac_sha256" => {
            return Err(ProviderError::new(
                "signature_header",
                "applies only to the hmac_sha256 scheme",
            ));
        }
        Some(value) => Some(parse_header_name("signature_header", value)?),
    };
    Scheme::from_parts(name, header).ok_or_else(|| {
        ProviderError::new("scheme", format!("unknown scheme {name:?}; known: {known}"))
    })
}

fn parse_header_name(field: &str, value: &Value) -> Result<String, ProviderError> {
    let name = value
        .as_str()
        .filter(|n| is_header_name(n))
        .ok_or_else(|| ProviderError::new(field, "must be a valid HTTP header name"))?;
    // Header lookups ignore case; the stored name is lowercase so it shows as it is matched.
    Ok(name.to_ascii_lowercase())
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_secret(scheme: &Scheme, value: Option<&Value>) -> Result<String, ProviderError> {
    let secret = match value {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ProviderError::new("secret", "must be a string")),
        None => return Err(ProviderError::new("secret", "is required")),
    };
    // Printable ASCII only: the secret is HMAC key bytes that a person pastes, and a masked
    // view may cut it anywhere.
    let printable = secret.bytes().all(|b| (0x20..0x7f).contains(&b));
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN || !printable {
        return Err(ProviderError::new(
            "secret",
            format!("must be 1 to {MAX_SECRET_LEN} printable ASCII characters"),
        ));
    }
    if *scheme == Scheme::StandardWebhooks {
        SigningKey::from_secret(secret).map_err(|e| ProviderError::new("secret", e.to_string()))?;
    }
    Ok(secret.clone())
}

fn parse_tolerance(scheme: &Scheme, value: Option<&Value>) -> Result<Option<u32>, ProviderError> {
    if !scheme.has_timestamp() {
        return match value {
            None => Ok(None),
            Some(_) => Err(ProviderError::new(
                "tolerance_s",
                "applies only to the standard_webhooks and stripe schemes, which sign a timestamp",
            )),
        };
    }
    match value {
        None => Ok(Some(DEFAULT_TOLERANCE_S)),
        Some(v) => v
            .as_u64()
            .filter(|t| *t <= u64::from(MAX_TOLERANCE_S))
            .map(|t| Some(t as u32))
            .ok_or_else(|| {
                ProviderError::new(
                    "tolerance_s",
                    format!("must be an integer from 0 to {MAX_TOLERANCE_S} seconds"),
                )
            }),
    }
}

fn parse_event_type(value: Option<&Value>) -> Result<EventTypeFrom, ProviderError> {
    let shape = "must be {\"field\": \"<dotted path into the body>\"} or {\"header\": \"<name>\"}";
    let Some(Value::Object(map)) = value else {
        return match value {
            None => Err(ProviderError::new("event_type", "is required")),
            Some(_) => Err(ProviderError::new("event_type", shape)),
        };
    };
    let mut entries = map.iter();
    let (Some((key, inner)), None) = (entries.next(), entries.next()) else {
        return Err(ProviderError::new("event_type", shape));
    };
    match key.as_str() {
        "header" => parse_header_name("event_type.header", inner).map(EventTypeFrom::Header),
        "field" => {
            let path = inner
                .as_str()
                .filter(|p| p.len() <= MAX_NAME_LEN && p.split('.').all(|s| !s.is_empty()))
                .ok_or_else(|| {
                    ProviderError::new(
                        "event_type.field",
                        "must be a dotted path of non-empty keys, such as `type` or `event.kind`",
                    )
                })?;
            Ok(EventTypeFrom::Field(path.to_owned()))
        }
        _ => Err(ProviderError::new("event_type", shape)),
    }
}

fn parse_type_prefix(value: Option<&Value>) -> Result<Option<String>, ProviderError> {
    let Some(value) = value else {
        return Ok(None);
    };
    // A prefix is good when some type can follow it: `github.` and `gh_` are, `a..` is not.
    let prefix = value
        .as_str()
        .filter(|p| !p.is_empty() && p.len() <= MAX_TYPE_PREFIX_LEN)
        .filter(|p| EventType::parse(&format!("{p}x")).is_ok())
        .ok_or_else(|| {
            ProviderError::new(
                "type_prefix",
                format!(
                    "must be 1 to {MAX_TYPE_PREFIX_LEN} bytes that start an event type, \
                     such as \"github.\""
                ),
            )
        })?;
    Ok(Some(prefix.to_owned()))
}

fn parse_source(value: Option<&Value>) -> Result<Option<String>, ProviderError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_NAME_LEN => Ok(Some(s.clone())),
        Some(_) => Err(ProviderError::new(
            "source",
            format!("must be a string of 1 to {MAX_NAME_LEN} bytes"),
        )),
    }
}

#[cfg(test)]
mod tests;
