//! Which values are credentials, and how reads show them: a credential given to Herald is used,
//! never shown again. A read shows [`MASK`] in its place, and a write that sends [`MASK`] back
//! keeps the stored value, so that what a read returned can be written back unchanged.

/// What a read shows instead of a credential.
pub const MASK: &str = "***";

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
