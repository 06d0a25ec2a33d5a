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

use crate::event::{EventType, MAX_NAME_LEN};
use crate::signing::{self, SigningKey, constant_time_eq};

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

/// Why a delivery was refused; every one answers 401 and stores nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    MissingHeader(String),
    #[error("the {0} header is malformed")]
    MalformedHeader(String),
    #[error("no signature matches the provider's secret and the body")]
    NoMatch,
    #[error("the signed timestamp is more than {tolerance_s} seconds from now")]
    TimestampOutOfTolerance { tolerance_s: u32 },
}

impl VerifyError {
    /// The stable error code of the API's answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            _ => "invalid_signature",
        }
    }
}

/// Checks a delivery signed by `scheme` with `secret` at `now` (Unix seconds). `tolerance_s`
/// bounds how far a signed timestamp may be from `now` (0: not checked); schemes without a
/// timestamp ignore it. The signature is checked before the timestamp, so only a holder of the
/// secret learns that its clock is off.
pub fn verify(
    scheme: &Scheme,
    secret: &str,
    tolerance_s: u32,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let signed_at = match scheme {
        Scheme::StandardWebhooks => Some(verify_standard_webhooks(secret, headers, body)?),
        Scheme::Stripe => Some(verify_stripe(secret, headers, body)?),
        Scheme::GitHub => {
            verify_body_hmac(secret, headers, body, "x-hub-signature-256", true)?;
            None
        }
        Scheme::HmacSha256 { signature_header } => {
            verify_body_hmac(secret, headers, body, signature_header, false)?;
            None
        }
    };
    match signed_at {
        Some(at) if tolerance_s > 0 && now.abs_diff(at) > u64::from(tolerance_s) => {
            Err(VerifyError::TimestampOutOfTolerance { tolerance_s })
        }
        _ => Ok(()),
    }
}

/// A header's text, trimmed.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    let value = headers
        .get(name)
        .ok_or_else(|| VerifyError::MissingHeader(name.to_owned()))?;
    value
        .to_str()
        .map(str::trim)
        .map_err(|_| VerifyError::MalformedHeader(name.to_owned()))
}

/// A Unix timestamp from the header `name`.
fn unix_seconds(text: &str, name: &str) -> Result<i64, VerifyError> {
    text.parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader(name.to_owned()))
}

/// Returns the signed timestamp.
fn verify_standard_webhooks(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<i64, VerifyError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    let at = unix_seconds(timestamp, "webhook-timestamp")?;
    // The secret was checked when the provider was registered.
    let key = SigningKey::from_secret(secret).map_err(|_| VerifyError::NoMatch)?;
    if signing::verify(&key, signatures, id, at, body) {
        Ok(at)
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Returns the signed timestamp.
fn verify_stripe(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<i64, VerifyError> {
    const NAME: &str = "stripe-signature";
    let malformed = || VerifyError::MalformedHeader(NAME.to_owned());
    let value = header(headers, NAME)?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        let (key, text) = item.trim().split_once('=').ok_or_else(malformed)?;
        match key {
            "t" if timestamp.is_none() => timestamp = Some(text),
            "t" => return Err(malformed()),
            "v1" => candidates.push(text),
            // Other schemes (Stripe's test-mode `v0`) are not trusted.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(malformed)?;
    let at = unix_seconds(timestamp, NAME)?;
    let key = SigningKey::from_raw(secret.as_bytes());
    let expected = key.hmac(&[timestamp.as_bytes(), b".", body]);
    if any_matches(&expected, candidates) {
        Ok(at)
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// The header `name` holds `sha256=<hex>` (or, unless `prefix_required`, bare `<hex>`) of the
/// HMAC-SHA256 of the body.
fn verify_body_hmac(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    name: &str,
    prefix_required: bool,
) -> Result<(), VerifyError> {
    let value = header(headers, name)?;
    let hex = match value.strip_prefix("sha256=") {
        Some(hex) => hex,
        None if prefix_required => return Err(VerifyError::MalformedHeader(name.to_owned())),
        None => value,
    };
    if decode_hex(hex).is_none() {
        return Err(VerifyError::MalformedHeader(name.to_owned()));
    }
    let expected = SigningKey::from_raw(secret.as_bytes()).hmac(&[body]);
    if any_matches(&expected, [hex]) {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// Whether any hex candidate is `expected`; every candidate is compared, in constant time.
fn any_matches<'a>(expected: &[u8; 32], candidates: impl IntoIterator<Item = &'a str>) -> bool {
    candidates.into_iter().fold(false, |found, candidate| {
        let matches = decode_hex(candidate).is_some_and(|bytes| constant_time_eq(&bytes, expected));
        found | matches
    })
}

/// Hex (either case) to bytes; `None` for anything else. A few lines rather than a crate.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    use super::*;

    const NOW: i64 = 1_750_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid","data":{"amount":2000}}"#;
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const PLAIN: &str = "It's a Secret to Everybody";

    /// Signing independent of the code under test: the hmac crate and hand-written formats.
    fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn standard_signature(secret: &str, id: &str, at: i64, body: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{at}.").as_bytes());
        mac.update(body);
        format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
    }

    fn stripe_header(secret: &str, at: i64, body: &[u8]) -> String {
        let signature = hmac_hex(secret.as_bytes(), &[at.to_string().as_bytes(), b".", body]);
        format!("t={at},v1={signature}")
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// A valid case's headers with one replaced.
    fn with_header(mut map: HeaderMap, name: &'static str, value: &str) -> HeaderMap {
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    fn standard(at: i64, signature: String) -> HeaderMap {
        headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", at.to_string()),
            ("webhook-signature", signature),
        ])
    }

    type Case = (
        &'static str,
        HeaderMap,
        &'static [u8],
        Result<(), VerifyError>,
    );

    fn run(scheme: Scheme, secret: &str, cases: Vec<Case>) {
        for (name, headers, body, expected) in cases {
            let got = verify(&scheme, secret, 300, &headers, body, NOW);
            assert_eq!(got, expected, "{}: {name}", scheme.as_str());
        }
    }

    #[test]
    fn standard_webhooks_deliveries() {
        let good = standard_signature(WHSEC, "msg_1", NOW, BODY);
        let other =
            standard_signature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "msg_1", NOW, BODY);
        let old = NOW - 301;
        let future = NOW + 301;
        let missing = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", NOW.to_string()),
        ]);
        let cases: Vec<Case> = vec![
            ("valid", standard(NOW, good.clone()), BODY, Ok(())),
            (
                "at the edge of tolerance",
                standard(
                    NOW - 300,
                    standard_signature(WHSEC, "msg_1", NOW - 300, BODY),
                ),
                BODY,
                Ok(()),
            ),
            (
                "wrong secret",
                standard(NOW, other.clone()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "tampered body",
                standard(NOW, good.clone()),
                b"{}",
                Err(VerifyError::NoMatch),
            ),
            (
                "another timestamp",
                standard(NOW + 1, good.clone()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "missing signature",
                missing,
                BODY,
                Err(VerifyError::MissingHeader("webhook-signature".into())),
            ),
            (
                "malformed timestamp",
                with_header(
                    standard(NOW, good.clone()),
                    "webhook-timestamp",
                    "yesterday",
                ),
                BODY,
                Err(VerifyError::MalformedHeader("webhook-timestamp".into())),
            ),
            (
                "not a v1 signature",
                standard(NOW, "v2,abc".into()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "too old",
                standard(old, standard_signature(WHSEC, "msg_1", old, BODY)),
                BODY,
                Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
            ),
            (
                "too far ahead",
                standard(future, standard_signature(WHSEC, "msg_1", future, BODY)),
                BODY,
                Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
            ),
            (
                "stale and unsigned: the signature decides first",
                standard(old, other.clone()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "several, one valid",
                standard(NOW, format!("{other} {good}")),
                BODY,
                Ok(()),
            ),
        ];
        run(Scheme::StandardWebhooks, WHSEC, cases);
    }

    #[test]
    fn stripe_deliveries() {
        let secret = "whsec_stripe_test_secret";
        let good = stripe_header(secret, NOW, BODY);
        let wrong = stripe_header("whsec_other", NOW, BODY);
        let good_v1 = good.split_once(",v1=").unwrap().1.to_owned();
        let wrong_v1 = wrong.split_once(",v1=").unwrap().1.to_owned();
        let sig = |value: String| headers(&[("stripe-signature", value)]);
        let old = NOW - 1000;
        let cases: Vec<Case> = vec![
            ("valid", sig(good.clone()), BODY, Ok(())),
            (
                "upper-case hex",
                sig(format!("t={NOW},v1={}", good_v1.to_uppercase())),
                BODY,
                Ok(()),
            ),
            (
                "wrong secret",
                sig(wrong.clone()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "tampered body",
                sig(good.clone()),
                b"{\"id\":\"evt_2\"}",
                Err(VerifyError::NoMatch),
            ),
            (
                "timestamp changed",
                sig(format!("t={},v1={good_v1}", NOW + 1)),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "missing header",
                HeaderMap::new(),
                BODY,
                Err(VerifyError::MissingHeader("stripe-signature".into())),
            ),
            (
                "no timestamp",
                sig(format!("v1={good_v1}")),
                BODY,
                Err(VerifyError::MalformedHeader("stripe-signature".into())),
            ),
            (
                "not key=value",
                sig("garbage".into()),
                BODY,
                Err(VerifyError::MalformedHeader("stripe-signature".into())),
            ),
            (
                "timestamp not a number",
                sig(format!("t=soon,v1={good_v1}")),
                BODY,
                Err(VerifyError::MalformedHeader("stripe-signature".into())),
            ),
            (
                "only a v0 signature",
                sig(format!("t={NOW},v0={good_v1}")),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "not hex",
                sig(format!("t={NOW},v1=zz")),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "too old",
                sig(stripe_header(secret, old, BODY)),
                BODY,
                Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
            ),
            (
                "too far ahead",
                sig(stripe_header(secret, NOW + 1000, BODY)),
                BODY,
                Err(VerifyError::TimestampOutOfTolerance { tolerance_s: 300 }),
            ),
            (
                "several, one valid",
                sig(format!("t={NOW},v1={wrong_v1},v1={good_v1},v0=abc")),
                BODY,
                Ok(()),
            ),
        ];
        run(Scheme::Stripe, secret, cases);
    }

    #[test]
    fn a_zero_tolerance_turns_the_timestamp_check_off() {
        let secret = "whsec_stripe_test_secret";
        let old = headers(&[(
            "stripe-signature",
            stripe_header(secret, NOW - 100_000, BODY),
        )]);
        assert_eq!(verify(&Scheme::Stripe, secret, 0, &old, BODY, NOW), Ok(()));
        assert_eq!(
            verify(&Scheme::Stripe, secret, 86_400, &old, BODY, NOW),
            Err(VerifyError::TimestampOutOfTolerance {
                tolerance_s: 86_400
            })
        );
    }

    #[test]
    fn github_deliveries() {
        let good = format!("sha256={}", hmac_hex(PLAIN.as_bytes(), &[BODY]));
        let wrong = format!("sha256={}", hmac_hex(b"another secret", &[BODY]));
        let sig = |value: String| headers(&[("x-hub-signature-256", value)]);
        let bare = good.trim_start_matches("sha256=").to_owned();
        let cases: Vec<Case> = vec![
            ("valid", sig(good.clone()), BODY, Ok(())),
            ("wrong secret", sig(wrong), BODY, Err(VerifyError::NoMatch)),
            (
                "tampered body",
                sig(good.clone()),
                b"{}",
                Err(VerifyError::NoMatch),
            ),
            (
                "missing header",
                headers(&[("x-hub-signature", "sha1=00".into())]),
                BODY,
                Err(VerifyError::MissingHeader("x-hub-signature-256".into())),
            ),
            (
                "no sha256= prefix",
                sig(bare),
                BODY,
                Err(VerifyError::MalformedHeader("x-hub-signature-256".into())),
            ),
            (
                "not hex",
                sig("sha256=xyz".into()),
                BODY,
                Err(VerifyError::MalformedHeader("x-hub-signature-256".into())),
            ),
            (
                "truncated",
                sig(good[..good.len() - 2].to_owned()),
                BODY,
                Err(VerifyError::NoMatch),
            ),
        ];
        run(Scheme::GitHub, PLAIN, cases);
    }

    #[test]
    fn github_documentation_example() {
        // From GitHub's "Validating webhook deliveries".
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let headers = headers(&[("x-hub-signature-256", signature.into())]);
        assert_eq!(
            verify(&Scheme::GitHub, PLAIN, 0, &headers, b"Hello, World!", NOW),
            Ok(())
        );
    }

    #[test]
    fn plain_hmac_deliveries() {
        let scheme = Scheme::HmacSha256 {
            signature_header: "x-acme-signature".into(),
        };
        let hex = hmac_hex(PLAIN.as_bytes(), &[BODY]);
        let sig = |value: String| headers(&[("x-acme-signature", value)]);
        let cases: Vec<Case> = vec![
            ("valid", sig(hex.clone()), BODY, Ok(())),
            (
                "valid with sha256=",
                sig(format!("sha256={hex}")),
                BODY,
                Ok(()),
            ),
            (
                "wrong secret",
                sig(hmac_hex(b"nope", &[BODY])),
                BODY,
                Err(VerifyError::NoMatch),
            ),
            (
                "tampered body",
                sig(hex.clone()),
                b"[]",
                Err(VerifyError::NoMatch),
            ),
            (
                "default header is not the configured one",
                headers(&[("x-signature", hex.clone())]),
                BODY,
                Err(VerifyError::MissingHeader("x-acme-signature".into())),
            ),
            (
                "malformed",
                sig("sha256=".into()),
                BODY,
                Err(VerifyError::MalformedHeader("x-acme-signature".into())),
            ),
        ];
        run(scheme, PLAIN, cases);
    }

    #[test]
    fn error_codes() {
        assert_eq!(VerifyError::NoMatch.code(), "invalid_signature");
        assert_eq!(
            VerifyError::MissingHeader("x".into()).code(),
            "invalid_signature"
        );
        assert_eq!(
            VerifyError::TimestampOutOfTolerance { tolerance_s: 1 }.code(),
            "timestamp_out_of_tolerance"
        );
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10Ab"), Some(vec![0, 255, 16, 171]));
        for bad in ["", "0", "0g", "+1", "é1"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
    }

    fn spec(extra: Value) -> Value {
        let mut base = json!({
            "name": "stripe",
            "scheme": "stripe",
            "secret": "whsec_stripe_test_secret",
            "event_type": {"field": "type"},
        });
        for (key, value) in extra.as_object().unwrap() {
            base[key] = value.clone();
        }
        base
    }

    #[test]
    fn a_provider_spec_gets_its_defaults() {
        let parsed = ProviderSpec::parse(&spec(json!({}))).unwrap();
        assert_eq!(parsed.scheme, Scheme::Stripe);
        assert_eq!(parsed.tolerance_s, Some(DEFAULT_TOLERANCE_S));
        assert_eq!(parsed.event_source(), "stripe");
        let hmac = ProviderSpec::parse(&spec(json!({"scheme": "hmac_sha256"}))).unwrap();
        assert_eq!(
            hmac.scheme.signature_header(),
            Some(DEFAULT_SIGNATURE_HEADER)
        );
        assert_eq!(hmac.tolerance_s, None);
        let github = ProviderSpec::parse(&spec(json!({
            "scheme": "github",
            "event_type": {"header": "X-GitHub-Event"},
            "type_prefix": "github.",
            "source": "gh",
        })))
        .unwrap();
        assert_eq!(
            github.event_type,
            EventTypeFrom::Header("x-github-event".into())
        );
        assert_eq!(github.event_source(), "gh");
    }

    #[test]
    fn bad_provider_specs_name_their_field() {
        let cases = [
            (json!({"name": ""}), "name"),
            (json!({"scheme": "svix"}), "scheme"),
            (json!({"scheme": 1}), "scheme"),
            (json!({"secret": ""}), "secret"),
            (json!({"secret": "tab\there"}), "secret"),
            (
                json!({"scheme": "standard_webhooks", "secret": "not-whsec"}),
                "secret",
            ),
            (json!({"tolerance_s": 86_401}), "tolerance_s"),
            (json!({"tolerance_s": -1}), "tolerance_s"),
            (
                json!({"scheme": "github", "tolerance_s": 60}),
                "tolerance_s",
            ),
            (json!({"signature_header": "x-sig"}), "signature_header"),
            (
                json!({"scheme": "hmac_sha256", "signature_header": "bad header"}),
                "signature_header",
            ),
            (json!({"event_type": "type"}), "event_type"),
            (json!({"event_type": {}}), "event_type"),
            (
                json!({"event_type": {"field": "type", "header": "x"}}),
                "event_type",
            ),
            (json!({"event_type": {"field": "a..b"}}), "event_type.field"),
            (json!({"event_type": {"header": ""}}), "event_type.header"),
            (json!({"type_prefix": "a..b"}), "type_prefix"),
            (json!({"type_prefix": ""}), "type_prefix"),
            (json!({"source": ""}), "source"),
            (json!({"colour": "blue"}), "colour"),
        ];
        for (extra, field) in cases {
            let error = ProviderSpec::parse(&spec(extra.clone())).unwrap_err();
            assert_eq!(error.field, field, "{extra}: {error}");
        }
        for missing in ["name", "scheme", "secret", "event_type"] {
            let mut body = spec(json!({}));
            body.as_object_mut().unwrap().remove(missing);
            assert_eq!(ProviderSpec::parse(&body).unwrap_err().field, missing);
        }
    }

    #[test]
    fn event_type_and_delivery_id_are_found() {
        let stripe = ProviderSpec::parse(&spec(json!({
            "event_type": {"field": "data.kind"},
            "type_prefix": "stripe.",
        })))
        .unwrap();
        let body = json!({"id": "evt_9", "data": {"kind": "invoice.paid"}});
        let none = HeaderMap::new();
        assert_eq!(
            stripe.event_type_of(&none, &body).as_deref(),
            Some("stripe.invoice.paid")
        );
        assert_eq!(
            stripe.event_type_of(&none, &json!({"data": {"kind": 1}})),
            None
        );
        assert_eq!(stripe.event_type_of(&none, &json!({})), None);
        assert_eq!(stripe.delivery_id(&none, &body).as_deref(), Some("evt_9"));

        let github = ProviderSpec::parse(&spec(json!({
            "scheme": "github",
            "event_type": {"header": "x-github-event"},
        })))
        .unwrap();
        let delivered = headers(&[
            ("x-github-event", "push".into()),
            ("x-github-delivery", "72d3162e".into()),
        ]);
        assert_eq!(
            github.event_type_of(&delivered, &body).as_deref(),
            Some("push")
        );
        assert_eq!(
            github.delivery_id(&delivered, &body).as_deref(),
            Some("72d3162e")
        );
        assert_eq!(github.event_type_of(&none, &body), None);
    }
}
