//! Sealing what must not be readable at rest (tenant secrets, handlers with their signing
//! secrets and credentials, providers' secrets): AES-256-GCM from RustCrypto, under the key
//! `security.encryption_key`, each value bound to the row it belongs to.
//!
//! A sealed value is text: `sealed:v1:<key id>:<base64 of nonce and ciphertext>`. The key id
//! (the first 8 bytes of the key's SHA-256, in hex) names the key that sealed it, so that a
//! rotated key keeps opening what it sealed until everything is sealed again with the new one
//! (`reencrypt`). A value without the prefix was written before sealing began, and is read as
//! it is until then.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("no encryption key is configured (security.encryption_key)")]
    NoKey,
    #[error("sealed with key {0}, which is not configured (security.previous_encryption_keys)")]
    UnknownKey(String),
    #[error("the sealed value is damaged or belongs elsewhere")]
    Corrupt,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn new(bytes: &[u8]) -> Option<Self> {
        let cipher = Aes256Gcm::new_from_slice(bytes).ok()?;
        let digest = Sha256::digest(bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(Self { id, cipher })
    }
}

/// The keys a process seals and opens with: the current one, and older ones that still open
/// what they sealed.
#[derive(Default)]
pub struct KeyRing {
    current: Option<Key>,
    previous: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A key as configuration gives it: 32 bytes in base64. `None` when it is not one.
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    BASE64
        .decode(text.trim())
        .ok()
        .filter(|bytes| bytes.len() == 32)
}

/// A fresh random key, as configuration takes it.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    BASE64.encode(bytes)
}

impl KeyRing {
    /// Keys from their base64 text (validated with the configuration); an empty `current`
    /// means none.
    pub fn new(current: &str, previous: &[String]) -> Self {
        let key = |text: &str| decode_key(text).and_then(|bytes| Key::new(&bytes));
        Self {
            current: (!current.is_empty()).then(|| key(current)).flatten(),
            previous: previous.iter().filter_map(|text| key(text)).collect(),
        }
    }

    /// Whether a key to seal with is configured.
    pub fn can_seal(&self) -> bool {
        self.current.is_some()
    }

    /// Seals `plain` for the row `context` names (sealed for one row, it opens for no other).
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, SealError> {
        let key = self.current.as_ref().ok_or(SealError::NoKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plain,
            aad: context.as_bytes(),
        };
        let sealed = key
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealError::Corrupt)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, BASE64.encode(bytes)))
    }

    /// Opens a value sealed for `context`, with whichever configured key sealed it.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SealError> {
        let (id, body) = sealed
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(SealError::Corrupt)?;
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let bytes = BASE64.decode(body).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Corrupt)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        key.cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether `text` is sealed with the current key (nothing to do for a re-encryption).
    pub fn is_current(&self, text: &str) -> bool {
        let id = text
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(id, _)| id);
        matches!((id, &self.current), (Some(id), Some(key)) if key.id == id)
    }
}

/// Whether `text` is a sealed value (rather than one written before sealing began).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        BASE64.encode([byte; 32])
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_row() {
        let keys = KeyRing::new(&key(1), &[]);
        let sealed = keys.seal(b"hunter2", "secret/t1/crm_token").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            keys.open(&sealed, "secret/t1/crm_token").unwrap(),
            b"hunter2"
        );
        assert_eq!(
            keys.open(&sealed, "secret/t2/crm_token"),
            Err(SealError::Corrupt),
            "moved to another row, it does not open"
        );
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(
            sealed,
            keys.seal(b"hunter2", "secret/t1/crm_token").unwrap()
        );
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed() {
        let old = KeyRing::new(&key(1), &[]);
        let sealed = old.seal(b"v", "c").unwrap();
        let rotated = KeyRing::new(&key(2), &[key(1)]);
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"v");
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal(b"v", "c").unwrap()));
        let forgotten = KeyRing::new(&key(2), &[]);
        assert!(matches!(
            forgotten.open(&sealed, "c"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn without_a_key_nothing_is_sealed() {
        let none = KeyRing::new("", &[]);
        assert!(!none.can_seal());
        assert_eq!(none.seal(b"v", "c"), Err(SealError::NoKey));
        assert_eq!(none.open("not sealed", "c"), Err(SealError::Corrupt));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(decode_key(&key(7)).is_some());
        assert!(decode_key(&generate_key()).is_some());
        assert!(decode_key("c2hvcnQ=").is_none());
        assert!(decode_key("not base64!").is_none());
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let keys = KeyRing::new(&key(1), &[key(2)]);
        let text = format!("{keys:?}");
        assert!(!text.contains(&key(1)) && !text.contains(&key(2)), "{text}");
    }
}
