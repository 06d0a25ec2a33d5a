//! Reading an action's optional fields, and refusing unknown ones, with errors naming the field
//! (shared with the handler types' parsers).

use super::ActionError;
use crate::json_tree::{Json, Object};

/// Refuses a key of `map` that `allowed` does not name, as `<prefix>.<key>`.
pub fn reject_unknown(map: &Object<'_>, allowed: &[&str], prefix: &str) -> Result<(), ActionError> {
    match map.keys().find(|k| !allowed.contains(k)) {
        Some(key) => Err(ActionError::new(
            format!("{prefix}.{key}"),
            "is not a known field",
        )),
        None => Ok(()),
    }
}

pub(super) fn optional_string(
    map: &Object<'_>,
    key: &str,
    max_len: usize,
) -> Result<Option<String>, ActionError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) if s.len() <= max_len => Ok(Some(s.as_ref().to_owned())),
        Some(_) => Err(ActionError::new(
            key,
            format!("must be a string of at most {max_len} bytes"),
        )),
    }
}

pub(super) fn optional_positive(
    map: &Object<'_>,
    key: &str,
    max: u64,
) -> Result<Option<u32>, ActionError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .map(|n| Some(n as u32))
            .ok_or_else(|| ActionError::new(key, format!("must be an integer from 1 to {max}"))),
    }
}
