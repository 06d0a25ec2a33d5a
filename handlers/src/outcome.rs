//! What an attempt's result means: pure classification of responses and transport errors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_common::status::ErrorKind;

use crate::attempt::Delivered;

/// The executor's reading of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Worth another attempt, possibly not before `retry_after`.
    Retry {
        kind: ErrorKind,
        retry_after: Option<Duration>,
    },
    /// Permanent: no further attempts.
    Fail {
        kind: ErrorKind,
    },
    /// 410 Gone: permanent, and the action is disabled.
    Gone,
}

/// Classifies an HTTP status (with its `Retry-After` header, if any) received at `now`.
pub fn classify_status(status: u16, retry_after: Option<&str>, now: DateTime<Utc>) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        300..=399 => Verdict::Fail {
            kind: ErrorKind::Redirect,
        },
        410 => Verdict::Gone,
        408 | 425 | 429 | 500..=599 => Verdict::Retry {
            kind: ErrorKind::HttpStatus,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => Verdict::Fail {
            kind: ErrorKind::HttpStatus,
        },
    }
}

/// Classifies an HTTP status for a handler whose `success_codes` (if given) replace 2xx as the
/// statuses that succeed: another 2xx then fails for good, anything else is read as usual.
pub fn classify_status_with(
    status: u16,
    success_codes: Option<&[u16]>,
    retry_after: Option<&str>,
    now: DateTime<Utc>,
) -> Verdict {
    match success_codes {
        Some(codes) if codes.contains(&status) => Verdict::Success,
        Some(_) if (200..=299).contains(&status) => Verdict::Fail {
            kind: ErrorKind::HttpStatus,
        },
        _ => classify_status(status, retry_after, now),
    }
}

/// What one HTTP attempt's result means, its `Retry-After` read from when the answer came
/// (the attempt started at `started`).
pub fn verdict_of(
    delivered: &Delivered,
    success_codes: Option<&[u16]>,
    started: DateTime<Utc>,
) -> Verdict {
    let answered = started + chrono::Duration::from_std(delivered.duration).unwrap_or_default();
    match (&delivered.status, &delivered.error) {
        (Some(status), _) => {
            classify_status_with(*status, success_codes, delivered.retry_after(), answered)
        }
        (None, Some((kind, _))) => classify_error(*kind),
        (None, None) => classify_error(ErrorKind::Request),
    }
}

/// Classifies a failure that produced no response.
pub fn classify_error(kind: ErrorKind) -> Verdict {
    match kind {
        // A broker that refused a chained event may take it a moment later.
        ErrorKind::Timeout
        | ErrorKind::Connect
        | ErrorKind::Dns
        | ErrorKind::Request
        | ErrorKind::Publish
        | ErrorKind::SmtpDeferred => Verdict::Retry {
            kind,
            retry_after: None,
        },
        ErrorKind::Tls
        | ErrorKind::DestinationRefused
        | ErrorKind::HttpStatus
        | ErrorKind::Redirect
        | ErrorKind::ActionUnavailable
        | ErrorKind::ChainTooDeep
        | ErrorKind::Template
        | ErrorKind::Auth
        | ErrorKind::SmtpRejected => Verdict::Fail { kind },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date; a date in the past means "now".
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn statuses() {
        let retry = |retry_after| Verdict::Retry {
            kind: ErrorKind::HttpStatus,
            retry_after,
        };
        let fail = Verdict::Fail {
            kind: ErrorKind::HttpStatus,
        };
        let table = [
            (200, Verdict::Success),
            (201, Verdict::Success),
            (204, Verdict::Success),
            (299, Verdict::Success),
            (
                301,
                Verdict::Fail {
                    kind: ErrorKind::Redirect,
                },
            ),
            (
                302,
                Verdict::Fail {
                    kind: ErrorKind::Redirect,
                },
            ),
            (
                304,
                Verdict::Fail {
                    kind: ErrorKind::Redirect,
                },
            ),
            (400, fail.clone()),
            (401, fail.clone()),
            (403, fail.clone()),
            (404, fail.clone()),
            (408, retry(None)),
            (409, fail.clone()),
            (410, Verdict::Gone),
            (413, fail.clone()),
            (422, fail.clone()),
            (425, retry(None)),
            (429, retry(None)),
            (500, retry(None)),
            (502, retry(None)),
            (503, retry(None)),
            (504, retry(None)),
            (599, retry(None)),
        ];
        for (status, expected) in table {
            assert_eq!(classify_status(status, None, now()), expected, "{status}");
        }
    }

    #[test]
    fn success_codes_replace_2xx() {
        let fail = Verdict::Fail {
            kind: ErrorKind::HttpStatus,
        };
        let codes: &[u16] = &[200, 202, 302];
        let table = [
            (200, Verdict::Success),
            (202, Verdict::Success),
            (302, Verdict::Success),
            (204, fail.clone()),
            (404, fail.clone()),
            (
                503,
                Verdict::Retry {
                    kind: ErrorKind::HttpStatus,
                    retry_after: None,
                },
            ),
        ];
        for (status, expected) in table {
            assert_eq!(
                classify_status_with(status, Some(codes), None, now()),
                expected,
                "{status}"
            );
        }
        assert_eq!(
            classify_status_with(204, None, None, now()),
            Verdict::Success
        );
    }

    #[test]
    fn retry_after_is_read_on_retryable_statuses_only() {
        let verdict = classify_status(429, Some("2"), now());
        assert_eq!(
            verdict,
            Verdict::Retry {
                kind: ErrorKind::HttpStatus,
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            classify_status(404, Some("2"), now()),
            Verdict::Fail {
                kind: ErrorKind::HttpStatus
            }
        );
    }

    #[test]
    fn retry_after_forms() {
        let table = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "Sun, 22 Nov 2026 10:00:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Sun, 22 Nov 2026 09:00:00 GMT", Some(Duration::ZERO)),
            ("soon", None),
            ("-5", None),
        ];
        for (value, expected) in table {
            assert_eq!(parse_retry_after(value, now()), expected, "{value}");
        }
    }

    #[test]
    fn transport_errors() {
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Dns,
            ErrorKind::Request,
            ErrorKind::Publish,
            ErrorKind::SmtpDeferred,
        ] {
            assert!(
                matches!(classify_error(kind), Verdict::Retry { .. }),
                "{kind:?}"
            );
        }
        for kind in [
            ErrorKind::DestinationRefused,
            ErrorKind::Tls,
            ErrorKind::ChainTooDeep,
            ErrorKind::ActionUnavailable,
            ErrorKind::Template,
            ErrorKind::Auth,
            ErrorKind::SmtpRejected,
        ] {
            assert_eq!(classify_error(kind), Verdict::Fail { kind });
        }
    }
}
