//! Typed, prefixed identifiers for everything Herald stores or sends.
//!
//! Ids are UUIDv7 (time-ordered, so new rows land at the right edge of their index) shown as
//! `<prefix>_<26 chars of Crockford base32>`. The prefix makes a pasted id self-describing and
//! lets the API reject an action id where an execution id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

fn encode_base32(value: u128) -> String {
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (25 - i);
        *slot = ALPHABET[((value >> shift) & 0x1f) as usize];
    }
    // The alphabet is ASCII, so this cannot fail.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

fn decode_base32(text: &str) -> Option<u128> {
    if text.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for (i, byte) in text.bytes().enumerate() {
        let digit = match byte.to_ascii_lowercase() {
            b'o' => 0,
            b'i' | b'l' => 1,
            other => ALPHABET.iter().position(|&c| c == other)? as u128,
        };
        // 26 * 5 = 130 bits: the first character may only carry the top 3 bits.
        if i == 0 && digit > 7 {
            return None;
        }
        value = (value << 5) | digit;
    }
    Some(value)
}

/// The reason a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id (expected `{prefix}_` followed by 26 base32 characters)")]
pub struct IdParseError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, encode_base32(self.0.as_u128()))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let error = IdParseError { kind: $kind, prefix: $prefix };
                let rest = text
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .ok_or(error.clone())?;
                decode_base32(rest).map(|v| Self(Uuid::from_u128(v))).ok_or(error)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation. Every other record belongs to exactly one.
    TenantId, "ten", "tenant"
);
typed_id!(
    /// An API key of a tenant (the key's secret is never stored, only its hash).
    ApiKeyId, "key", "api key"
);
typed_id!(
    /// A configured action.
    ActionId, "act", "action"
);
typed_id!(
    /// A tenant's delivery destination (scheme, host and port) and its circuit breaker.
    EndpointId, "end", "endpoint"
);
typed_id!(
    /// One action run for one event; also the `webhook-id` of every delivery it makes.
    ExecutionId, "exe", "execution"
);
typed_id!(
    /// One try of an execution.
    AttemptId, "att", "attempt"
);
typed_id!(
    /// An operator's retry of every execution matching a filter, carried out page by page.
    BulkRetryId, "blk", "bulk retry"
);
typed_id!(
    /// A provider whose webhooks a tenant receives at `POST /v1/hooks/{id}`.
    ProviderId, "prv", "provider"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        for _ in 0..1000 {
            let id = ExecutionId::new();
            let text = id.to_string();
            assert!(text.starts_with("exe_"));
            assert_eq!(text.len(), 4 + 26);
            assert_eq!(text.parse::<ExecutionId>().unwrap(), id);
        }
    }

    #[test]
    fn extreme_values_round_trip() {
        for value in [0u128, 1, u128::MAX, u128::MAX >> 1] {
            let id = ActionId(Uuid::from_u128(value));
            assert_eq!(id.to_string().parse::<ActionId>().unwrap(), id);
        }
    }

    #[test]
    fn wrong_prefix_or_garbage_is_rejected() {
        let action = ActionId::new().to_string();
        assert!(action.parse::<ExecutionId>().is_err());
        for bad in [
            "",
            "act_",
            "act_123",
            "act-00000000000000000000000000",
            "act_zzzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert!(bad.parse::<ActionId>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = TenantId::new();
        let second = TenantId::new();
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id = TenantId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
    }
}
