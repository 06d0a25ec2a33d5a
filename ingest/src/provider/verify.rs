//! Checking a provider's delivery: its signature over exactly the bytes received, made with
//! the provider's secret, within the timestamp tolerance. Pure: the time is an argument.

use axum::http::HeaderMap;
use herald_handlers::signing::{self, SigningKey, constant_time_eq};

use super::Scheme;

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
pub(super) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}
