//! What an attempt leads to: a pure function of what the attempt did, the action's retry
//! policy, the attempt's number, the time and randomness. `job.rs` only carries it out.

use chrono::{DateTime, Utc};
use herald_common::action::RetryPolicy;
use herald_common::ids::{ExecutionId, TenantId};
use herald_common::status::{AttemptOutcome, ErrorKind};
use herald_common::store::{AttemptRecord, Outcome};
use herald_handlers::Performed;
use herald_handlers::outcome::Verdict;

use crate::retry;

/// The attempt's record and what happens to its execution next.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub record: AttemptRecord,
    /// The execution's state after the attempt (its next attempt's time, for a retry).
    pub outcome: Outcome,
    /// The endpoint answered 410 Gone: its action is disabled.
    pub disable_action: bool,
}

/// The attempt being decided: whose it is, and when it started.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub execution_id: ExecutionId,
    pub tenant_id: TenantId,
    pub number: u32,
    pub started_at: DateTime<Utc>,
}

/// Decides attempt `attempt` from what it did (`performed`), at `now`, with `random` uniform
/// in [0, 1) for the policy's jitter.
pub fn decide(
    attempt: Attempt,
    performed: Performed,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
    random: f64,
) -> Decision {
    let Performed {
        target,
        delivered,
        verdict,
    } = performed;
    let (outcome, attempt_outcome, error_kind) = match &verdict {
        Verdict::Success => (Outcome::Succeeded, AttemptOutcome::Succeeded, None),
        Verdict::Retry { kind, retry_after } => {
            let delay = retry::next_delay(policy, attempt.number, random, *retry_after)
                .and_then(|delay| chrono::Duration::from_std(delay).ok());
            match delay {
                Some(delay) => (
                    Outcome::RetryAt(now + delay),
                    AttemptOutcome::Retrying,
                    Some(*kind),
                ),
                None => (Outcome::Failed, AttemptOutcome::Failed, Some(*kind)),
            }
        }
        Verdict::Fail { kind } => (Outcome::Failed, AttemptOutcome::Failed, Some(*kind)),
        Verdict::Gone => (
            Outcome::Failed,
            AttemptOutcome::Failed,
            Some(ErrorKind::HttpStatus),
        ),
    };
    let error_message = match (&delivered.error, delivered.status) {
        (Some((_, message)), _) => Some(message.clone()),
        (None, Some(status)) if !(200..300).contains(&status) => Some(format!("HTTP {status}")),
        _ => None,
    };
    let response_headers = (!delivered.headers.is_empty()).then(|| {
        serde_json::Value::Object(
            delivered
                .headers
                .into_iter()
                .map(|(name, value)| (name, value.into()))
                .collect(),
        )
    });
    let record = AttemptRecord {
        execution_id: attempt.execution_id,
        tenant_id: attempt.tenant_id,
        attempt: attempt.number as i32,
        started_at: attempt.started_at,
        duration_ms: delivered.duration.as_millis().min(i32::MAX as u128) as i32,
        request_url: target,
        response_status: delivered.status.map(i32::from),
        response_headers,
        response_body: delivered.body,
        outcome: attempt_outcome,
        error_kind,
        error_message,
    };
    Decision {
        record,
        outcome,
        disable_action: verdict == Verdict::Gone,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_handlers::Delivered;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn attempt(number: u32) -> Attempt {
        Attempt {
            execution_id: ExecutionId::new(),
            tenant_id: TenantId::new(),
            number,
            started_at: now(),
        }
    }

    fn answered(status: u16, verdict: Verdict) -> Performed {
        Performed {
            target: "https://example.com/hook".into(),
            delivered: Delivered {
                status: Some(status),
                headers: vec![("content-type".into(), "text/plain".into())],
                body: Some("ok".into()),
                error: None,
                duration: Duration::from_millis(12),
            },
            verdict,
        }
    }

    fn unreached(kind: ErrorKind, verdict: Verdict) -> Performed {
        Performed {
            target: "https://example.com/hook".into(),
            delivered: Delivered::failed(kind, "connection refused".into(), Duration::ZERO),
            verdict,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::Delays {
            max_attempts: 3,
            delays_s: vec![30, 60],
        }
    }

    #[test]
    fn every_verdict_has_its_record_and_next_step() {
        let retry = |kind, retry_after| Verdict::Retry { kind, retry_after };
        let secs = |s: i64| now() + chrono::Duration::seconds(s);
        let http = ErrorKind::HttpStatus;
        // (what happened, attempt number, outcome, attempt outcome, kind, message, disable)
        let table = [
            (
                answered(200, Verdict::Success),
                1,
                Outcome::Succeeded,
                AttemptOutcome::Succeeded,
                None,
                None,
                false,
            ),
            (
                answered(503, retry(http, None)),
                1,
                Outcome::RetryAt(secs(30)),
                AttemptOutcome::Retrying,
                Some(http),
                Some("HTTP 503"),
                false,
            ),
            (
                answered(503, retry(http, None)),
                2,
                Outcome::RetryAt(secs(60)),
                AttemptOutcome::Retrying,
                Some(http),
                Some("HTTP 503"),
                false,
            ),
            // The last attempt: nothing left to retry.
            (
                answered(503, retry(http, None)),
                3,
                Outcome::Failed,
                AttemptOutcome::Failed,
                Some(http),
                Some("HTTP 503"),
                false,
            ),
            // Retry-After lengthens the delay, up to the policy's longest.
            (
                answered(429, retry(http, Some(Duration::from_secs(45)))),
                1,
                Outcome::RetryAt(secs(45)),
                AttemptOutcome::Retrying,
                Some(http),
                Some("HTTP 429"),
                false,
            ),
            (
                answered(400, Verdict::Fail { kind: http }),
                1,
                Outcome::Failed,
                AttemptOutcome::Failed,
                Some(http),
                Some("HTTP 400"),
                false,
            ),
            (
                answered(410, Verdict::Gone),
                1,
                Outcome::Failed,
                AttemptOutcome::Failed,
                Some(http),
                Some("HTTP 410"),
                true,
            ),
            (
                unreached(ErrorKind::Connect, retry(ErrorKind::Connect, None)),
                1,
                Outcome::RetryAt(secs(30)),
                AttemptOutcome::Retrying,
                Some(ErrorKind::Connect),
                Some("connection refused"),
                false,
            ),
        ];
        for (performed, number, outcome, recorded, kind, message, disable) in table {
            let case = format!("{:?} at attempt {number}", performed.verdict);
            let decision = decide(attempt(number), performed, &policy(), now(), 0.5);
            assert_eq!(decision.outcome, outcome, "{case}");
            assert_eq!(decision.record.outcome, recorded, "{case}");
            assert_eq!(decision.record.error_kind, kind, "{case}");
            assert_eq!(decision.record.error_message.as_deref(), message, "{case}");
            assert_eq!(decision.disable_action, disable, "{case}");
            assert_eq!(decision.record.attempt, number as i32, "{case}");
        }
    }

    #[test]
    fn the_record_keeps_what_the_destination_answered() {
        let decision = decide(
            attempt(1),
            answered(201, Verdict::Success),
            &policy(),
            now(),
            0.0,
        );
        let record = decision.record;
        assert_eq!(record.response_status, Some(201));
        assert_eq!(record.response_body.as_deref(), Some("ok"));
        assert_eq!(
            record.response_headers,
            Some(serde_json::json!({"content-type": "text/plain"}))
        );
        assert_eq!(record.duration_ms, 12);
        assert_eq!(record.request_url, "https://example.com/hook");
        let unreached = decide(
            attempt(1),
            unreached(
                ErrorKind::Dns,
                Verdict::Fail {
                    kind: ErrorKind::Dns,
                },
            ),
            &policy(),
            now(),
            0.0,
        );
        assert_eq!(unreached.record.response_headers, None);
        assert_eq!(unreached.record.response_status, None);
    }
}
