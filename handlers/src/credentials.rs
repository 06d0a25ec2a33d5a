//! Which values are credentials, and how reads show them: a credential given to Herald is used,
//! never shown again. A read shows [`MASK`] in its place, and a write that sends [`MASK`] back
//! keeps the stored value, so that what a read returned can be written back unchanged.

use herald_common::action::ActionError;
use serde_json::Value;

/// What a read shows instead of a credential.
pub const MASK: &str = "***";

/// Where a handler's JSON holds credentials: every credential-like header under `headers`, and
/// each of `members` (JSON pointers such as `/auth/token`) that is there.
fn credential_pointers(handler: &Value, members: &[&str]) -> Vec<String> {
    let mut pointers: Vec<String> = members
        .iter()
        .filter(|pointer| handler.pointer(pointer).is_some_and(Value::is_string))
        .map(|pointer| (*pointer).to_owned())
        .collect();
    if let Some(headers) = handler.get("headers").and_then(Value::as_object) {
        pointers.extend(
            headers
                .keys()
                .filter(|name| is_credential_header(name))
                .map(|name| format!("/headers/{}", name.replace('~', "~0").replace('/', "~1"))),
        );
    }
    pointers
}

/// The field a pointer names, as errors give it (`/auth/token`: `handler.auth.token`).
fn field(pointer: &str) -> String {
    format!(
        "handler{}",
        pointer
            .replace('/', ".")
            .replace("~1", "/")
            .replace("~0", "~")
    )
}

/// A handler's JSON as reads show it: each credential replaced by [`MASK`].
pub fn masked(handler: &Value, members: &[&str]) -> Value {
    let mut shown = handler.clone();
    for pointer in credential_pointers(handler, members) {
        if let Some(value) = shown.pointer_mut(&pointer) {
            *value = Value::from(MASK);
        }
    }
    shown
}

/// Puts back, in a handler's JSON as written, the stored value of each credential sent as
/// [`MASK`] (what a read showed). A mask with nothing stored at its place is refused.
pub fn restore_masked(
    handler: &mut Value,
    stored: Option<&Value>,
    members: &[&str],
) -> Result<(), ActionError> {
    for pointer in credential_pointers(handler, members) {
        if handler.pointer(&pointer).and_then(Value::as_str) != Some(MASK) {
            continue;
        }
        let kept = stored
            .and_then(|s| s.pointer(&pointer))
            .filter(|v| v.as_str() != Some(MASK))
            .cloned()
            .ok_or_else(|| {
                ActionError::new(
                    field(&pointer),
                    format!(
                        "{MASK:?} stands for the stored value, and there is none: send the value"
                    ),
                )
            })?;
        if let Some(value) = handler.pointer_mut(&pointer) {
            *value = kept;
        }
    }
    Ok(())
}

/// `text` with every one of `secrets` (values that must not be recorded) replaced by [`MASK`].
pub fn scrub<'t>(text: &'t str, secrets: &[&str]) -> std::borrow::Cow<'t, str> {
    let mut text = std::borrow::Cow::Borrowed(text);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, MASK).into();
        }
    }
    text
}

/// [`scrub`] on every string in `value`.
pub fn scrub_json(value: &mut serde_json::Value, secrets: &[&str]) {
    match value {
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(scrubbed) = scrub(text, secrets) {
                *text = scrubbed;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, secrets)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| scrub_json(v, secrets)),
        _ => {}
    }
}

/// Whether a header's value is a credential: `authorization`, `proxy-authorization`,
/// `cookie`, `x-api-key`, or any name containing `token`, `secret`, `key` or `password`.
pub fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
    ]
    .contains(&name.as_str())
        || ["token", "secret", "key", "password"]
            .iter()
            .any(|part| name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_and_a_mask_written_back_keeps_the_stored_value() {
        use serde_json::json;
        let members = ["/auth/token", "/auth/password"];
        let stored = json!({"url": "https://x/", "headers": {"x-api-key": "k1", "x-team": "a"},
                            "auth": {"type": "bearer", "token": "t1"}});
        let shown = masked(&stored, &members);
        assert_eq!(
            shown,
            json!({"url": "https://x/", "headers": {"x-api-key": "***", "x-team": "a"},
                   "auth": {"type": "bearer", "token": "***"}})
        );
        let mut written = shown.clone();
        restore_masked(&mut written, Some(&stored), &members).unwrap();
        assert_eq!(written, stored, "a read written back changes nothing");
        let error = restore_masked(&mut shown.clone(), None, &members).unwrap_err();
        assert_eq!(error.field, "handler.auth.token");
        let mut renamed = json!({"headers": {"x-other-key": "***"}});
        let error = restore_masked(&mut renamed, Some(&stored), &members).unwrap_err();
        assert_eq!(error.field, "handler.headers.x-other-key");
    }

    #[test]
    fn scrubbing_takes_out_every_secret() {
        assert_eq!(
            scrub("token s3cr3t and s3cr3t, key k", &["s3cr3t", "", "k"]),
            "to***en *** and ***, ***ey ***"
        );
        assert_eq!(scrub("nothing", &["x"]), "nothing");
        let mut shown = serde_json::json!({"text": "pem \"a\nb\" end", "to": ["x a\nb"], "n": 1});
        scrub_json(&mut shown, &["a\nb"]);
        assert_eq!(
            shown,
            serde_json::json!({"text": "pem \"***\" end", "to": ["x ***"], "n": 1})
        );
    }

    #[test]
    fn credential_headers_are_told_by_name() {
        let cases = [
            ("authorization", true),
            ("Authorization", true),
            ("proxy-authorization", true),
            ("cookie", true),
            ("x-api-key", true),
            ("x-auth-token", true),
            ("x-client-secret", true),
            ("apikey", true),
            ("x-db-password", true),
            ("x-team", false),
            ("content-type", false),
            ("x-request-id", false),
            ("accept", false),
        ];
        for (name, credential) in cases {
            assert_eq!(is_credential_header(name), credential, "{name}");
        }
    }
}
