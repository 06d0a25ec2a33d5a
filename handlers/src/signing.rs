//! Standard Webhooks signing (<https://www.standardwebhooks.com>): what every outgoing webhook
//! carries, and the constant-time check inbound verification uses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use herald_common::action::ActionError;
use herald_common::json_tree::{At, Json, Object};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const SECRET_PREFIX: &str = "whsec_";
/// Most secrets active at once (while one rotates, several sign every delivery).
pub const MAX_SECRETS: usize = 5;

/// Why a secret is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a signing secret must look like `whsec_<base64>`")]
    Format,
    #[error("a signing secret must decode to 24 to 64 bytes")]
    Length,
}

/// The decoded key bytes of a `whsec_` secret. Deliberately has no `Debug` output of its bytes.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl SigningKey {
    pub fn from_secret(secret: &str) -> Result<Self, SecretError> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Format)?;
        let bytes = BASE64.decode(encoded).map_err(|_| SecretError::Format)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length);
        }
        Ok(Self(bytes))
    }

    /// Raw key bytes, for schemes that key the HMAC with the secret text itself.
    pub fn from_raw(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac())
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The `v1,<base64>` signature of one webhook.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let digest = self.hmac(&[webhook_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(digest))
    }
}

fn unreachable_hmac() -> HmacSha256 {
    // `new_from_slice` never fails for HMAC; this avoids a panic path in the signature.
    std::process::abort()
}

/// A `whsec_` secret as an action keeps it: its text (stored, shown once) and its decoded key,
/// decoded once when the action is saved or loaded. A secret that does not decode is refused
/// there, never silently dropped when signing.
#[derive(Clone)]
pub struct Secret {
    text: String,
    key: SigningKey,
}

impl Secret {
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        Ok(Self {
            key: SigningKey::from_secret(text)?,
            text: text.to_owned(),
        })
    }

    /// A fresh random secret, for actions created without one.
    pub fn generate() -> Self {
        let text = generate_secret();
        Self {
            key: SigningKey::from_secret(&text).unwrap_or_else(|_| SigningKey::from_raw(&[])),
            text,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// The signing secrets of a handler's `secret` (one) and `secrets` (every active one, newest
/// first), at most [`MAX_SECRETS`]; one is made up when neither is given (`true` in the answer).
pub fn parse_secrets(map: &Object<'_>) -> Result<(Vec<Secret>, bool), ActionError> {
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
        // Signing on every webhook: a handler without a secret gets a fresh one.
        secrets.push(Secret::generate());
    }
    Ok((secrets, generated))
}

fn parse_secret(field: At<'_>, value: &Json<'_>) -> Result<Secret, ActionError> {
    let text = value
        .as_str()
        .ok_or_else(|| ActionError::new(field, "must be a string"))?;
    Secret::parse(text).map_err(|e| ActionError::new(field, e.to_string()))
}

/// A secret as reads show it: its last characters, in full only in the answer that created
/// it (`reveal`).
pub fn shown(secret: &Secret, reveal: bool) -> String {
    let text = secret.text();
    if reveal {
        text.to_owned()
    } else {
        format!("whsec_…{}", &text[text.len().saturating_sub(4)..])
    }
}

/// The Standard Webhooks headers of one signed request: its id, timestamp and one signature
/// per active secret.
pub fn standard_headers(
    secrets: &[Secret],
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(String, String); 3] {
    let keys = secrets.iter().map(|s| s.key());
    [
        (
            "webhook-signature".into(),
            signature_header(keys, webhook_id, timestamp, body),
        ),
        ("webhook-id".into(), webhook_id.to_owned()),
        ("webhook-timestamp".into(), timestamp.to_string()),
    ]
}

/// A fresh random secret, for actions created without one.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", BASE64.encode(bytes))
}

/// The `webhook-signature` header value: one `v1,` signature per active secret, space-separated.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a SigningKey>,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.into_iter()
        .map(|k| k.sign(webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1,` signature in `header` was made by `key`. Compared in constant time.
pub fn verify(
    key: &SigningKey,
    header: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> bool {
    let expected = key.sign(webhook_id, timestamp, body);
    header
        .split(' ')
        .filter(|candidate| candidate.starts_with("v1,"))
        .fold(false, |found, candidate| {
            found | bool::from(candidate.as_bytes().ct_eq(expected.as_bytes()))
        })
}

/// Constant-time equality of two byte strings (length differences are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference implementations.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specification_example() {
        let key = SigningKey::from_secret(SPEC_SECRET).unwrap();
        assert_eq!(
            key.sign(SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
    }

    #[test]
    fn verification_accepts_any_listed_signature_and_rejects_tampering() {
        let key = SigningKey::from_secret(SPEC_SECRET).unwrap();
        let other = SigningKey::from_secret(&generate_secret()).unwrap();
        let both = signature_header(
            &[other.clone(), key.clone()],
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY.as_bytes(),
        );
        assert_eq!(both.split(' ').count(), 2);
        assert!(verify(&key, &both, SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()));
        assert!(verify(
            &other,
            &both,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY.as_bytes()
        ));
        assert!(!verify(
            &key,
            &both,
            SPEC_ID,
            SPEC_TS + 1,
            SPEC_BODY.as_bytes()
        ));
        assert!(!verify(&key, &both, SPEC_ID, SPEC_TS, b"{}"));
        assert!(!verify(
            &key,
            "v1,AAAA",
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY.as_bytes()
        ));
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(
            SigningKey::from_secret("MfKQ9r8").unwrap_err(),
            SecretError::Format
        );
        assert_eq!(
            SigningKey::from_secret("whsec_!!!").unwrap_err(),
            SecretError::Format
        );
        assert_eq!(
            SigningKey::from_secret("whsec_AAAA").unwrap_err(),
            SecretError::Length
        );
        assert!(SigningKey::from_secret(&generate_secret()).is_ok());
    }
}
