//! Every error code the API answers with, declared once: its HTTP status and what it means.
//! `ApiError` takes a code from here (so none can be made up at a call site), the README's
//! error table is made from it (`cargo xtask docs`, checked by a test), and the codes that
//! other parts produce as text (event validation, provider checks) are looked up here.

use axum::http::StatusCode;

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:ident, $meaning:literal;)*) => {
        /// A stable, snake_case error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// What the code means, for the README's table.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidJson = "invalid_json", BAD_REQUEST,
        "the body is not JSON, or not the structure the route takes";
    UnreadableBody = "unreadable_body", BAD_REQUEST, "the body could not be read";
    Unauthorized = "unauthorized", UNAUTHORIZED, "no valid bearer key or admin token";
    InvalidSignature = "invalid_signature", UNAUTHORIZED,
        "a provider hook's signature is missing or not made with the provider's secret";
    TimestampOutOfTolerance = "timestamp_out_of_tolerance", UNAUTHORIZED,
        "a provider hook's signed timestamp is too far from now";
    Forbidden = "forbidden", FORBIDDEN,
        "valid credentials, but not for this route (the admin token on tenant data without \
         `Herald-Tenant`, a tenant key on tenant management)";
    NotFound = "not_found", NOT_FOUND,
        "no such object for this tenant (also another tenant's ids, and malformed ids)";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED,
        "the path exists, the method does not";
    NameTaken = "name_taken", CONFLICT, "another action or provider of the tenant has the name";
    ExecutionFinished = "execution_finished", CONFLICT, "the execution has already ended";
    ExecutionNotFinished = "execution_not_finished", CONFLICT,
        "the execution has not ended, so it cannot be retried";
    RevisionMismatch = "revision_mismatch", PRECONDITION_FAILED,
        "`If-Match` names a revision the action has moved on from";
    BodyTooLarge = "body_too_large", PAYLOAD_TOO_LARGE,
        "the body is larger than `ingest.max_body_bytes`";
    BatchTooLarge = "batch_too_large", PAYLOAD_TOO_LARGE,
        "a batch holds more than `ingest.max_batch_events` events";
    MetadataTooLarge = "metadata_too_large", PAYLOAD_TOO_LARGE,
        "an event's metadata has more entries or bytes than allowed";
    TooManyActions = "too_many_actions", PAYLOAD_TOO_LARGE, "an action set holds more than 1000";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "a content type the route does not read";
    MissingEventType = "missing_event_type", UNPROCESSABLE_ENTITY, "an event without `type`";
    InvalidEventType = "invalid_event_type", UNPROCESSABLE_ENTITY,
        "`type` is not dot-separated segments of `[A-Za-z0-9_-]`";
    InvalidEventId = "invalid_event_id", UNPROCESSABLE_ENTITY,
        "`id` is not 1 to 255 printable ASCII characters";
    InvalidSource = "invalid_source", UNPROCESSABLE_ENTITY,
        "`source` is empty, longer than 255 bytes or holds U+0000";
    InvalidTime = "invalid_time", UNPROCESSABLE_ENTITY, "`time` is not an RFC 3339 timestamp";
    InvalidMetadata = "invalid_metadata", UNPROCESSABLE_ENTITY,
        "`metadata` is not an object of strings (or holds U+0000)";
    TenantIdNotAllowed = "tenant_id_not_allowed", UNPROCESSABLE_ENTITY,
        "an HTTP event names a tenant: it comes from the key";
    EmptyBatch = "empty_batch", UNPROCESSABLE_ENTITY, "a batch without events";
    InvalidCloudEvent = "invalid_cloudevent", UNPROCESSABLE_ENTITY,
        "a CloudEvent that breaks the CloudEvents 1.0 HTTP binding";
    InvalidIdempotencyKey = "invalid_idempotency_key", UNPROCESSABLE_ENTITY,
        "`Idempotency-Key` is not 1 to 255 visible ASCII characters";
    IdempotencyKeyNotAllowed = "idempotency_key_not_allowed", UNPROCESSABLE_ENTITY,
        "`Idempotency-Key` on a batch: batch items dedupe by their own `id`";
    EventTypeMissing = "event_type_missing", UNPROCESSABLE_ENTITY,
        "a provider hook's delivery has no event type where the provider puts it";
    JsonTooDeep = "json_too_deep", UNPROCESSABLE_ENTITY,
        "`data` or `payload` nested deeper than `ingest.max_json_depth`, or a body deeper \
         than 128 levels";
    NumberOutOfRange = "number_out_of_range", UNPROCESSABLE_ENTITY,
        "a number beyond a 64-bit float's range";
    LoneSurrogate = "lone_surrogate", UNPROCESSABLE_ENTITY,
        "a `\\uXXXX` escape of half a UTF-16 surrogate pair";
    NulCharacter = "nul_character", UNPROCESSABLE_ENTITY,
        "a management body's text holds U+0000, which PostgreSQL cannot store (an event's \
         `data` may)";
    Unstorable = "unstorable", UNPROCESSABLE_ENTITY,
        "the database refused the request's own data; requests batched with it are stored";
    InvalidAction = "invalid_action", UNPROCESSABLE_ENTITY,
        "an action breaks a rule; the message names the field";
    DuplicateName = "duplicate_name", UNPROCESSABLE_ENTITY, "an action set names one action twice";
    WildcardBudgetExceeded = "wildcard_budget_exceeded", UNPROCESSABLE_ENTITY,
        "the tenant's wildcard patterns and regex conditions would pass \
         `ingest.wildcard_budget_per_tenant`";
    InvalidIfMatch = "invalid_if_match", UNPROCESSABLE_ENTITY,
        "`If-Match` does not hold a revision";
    InvalidEvent = "invalid_event", UNPROCESSABLE_ENTITY,
        "the test route's event cannot be read";
    NotSendable = "not_sendable", UNPROCESSABLE_ENTITY,
        "a test send of a handler that does more than send a request";
    InvalidProvider = "invalid_provider", UNPROCESSABLE_ENTITY,
        "a provider breaks a rule; the message names the field";
    InvalidDelivery = "invalid_delivery", UNPROCESSABLE_ENTITY,
        "a one-off delivery breaks a rule; the message names the field";
    InvalidSecret = "invalid_secret", UNPROCESSABLE_ENTITY,
        "a secret's name is not `[a-z0-9_]{1,64}`, or its value is empty or longer than 16 KiB";
    InvalidName = "invalid_name", UNPROCESSABLE_ENTITY, "a tenant's or key's name is not usable";
    InvalidParameter = "invalid_parameter", UNPROCESSABLE_ENTITY,
        "a query string parameter is unknown or malformed";
    RateLimited = "rate_limited", TOO_MANY_REQUESTS,
        "past the tenant's request rate; retry after `Retry-After`";
    TooManyStreams = "too_many_streams", TOO_MANY_REQUESTS,
        "the tenant has as many live streams open as one replica allows";
    Internal = "internal", INTERNAL_SERVER_ERROR, "a fault of Herald's; its details are logged";
    Unavailable = "unavailable", SERVICE_UNAVAILABLE,
        "a dependency (the database) is away for now; retry";
    Overloaded = "overloaded", SERVICE_UNAVAILABLE,
        "more work waits ahead of delivery than `ingest.max_backlog`; nothing was stored; retry \
         after `Retry-After`";
}

impl ErrorCode {
    /// The code named `code`, as event validation and provider checks give it.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }
}

/// The README's table of codes: status, code, meaning.
pub fn reference_table() -> String {
    let mut table = String::from("| status | code | meaning |\n|---|---|---|\n");
    let mut codes = ErrorCode::ALL.to_vec();
    codes.sort_by_key(|c| c.status().as_u16());
    for code in codes {
        table.push_str(&format!(
            "| {} | `{}` | {} |\n",
            code.status().as_u16(),
            code.code(),
            code.meaning()
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "{} twice", code.code());
            assert!(
                code.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                code.code()
            );
            assert_eq!(ErrorCode::from_code(code.code()), Some(*code));
        }
    }

    #[test]
    fn every_code_other_parts_produce_is_declared() {
        // Event validation's codes, at every door (the broker's dead letters use them too).
        let broker_only = [
            "unknown_type",
            "unsupported_version",
            "corrupt_body",
            "unsupported_content_type",
            "missing_tenant_id",
            "invalid_tenant_id",
            "unknown_tenant",
        ];
        for code in herald_common::messages::DEAD_LETTER_CODES {
            if !broker_only.contains(code) {
                assert!(ErrorCode::from_code(code).is_some(), "{code}");
            }
        }
        for code in ["invalid_signature", "timestamp_out_of_tolerance"] {
            assert!(ErrorCode::from_code(code).is_some(), "{code}");
        }
    }
}
