//! Executions and their attempts. Status changes are guarded updates, so a redelivered job can
//! never move an execution backwards or run an attempt twice in the normal case.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{Store, storable_text};
use crate::event::EventId;
use crate::ids::{ActionId, AttemptId, ExecutionId, TenantId};
use crate::status::{AttemptOutcome, ErrorKind, ExecutionStatus};

/// An execution the matcher is about to record.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: ExecutionId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub action_id: ActionId,
    pub max_attempts: i32,
    pub priority: i32,
}

/// The row for an (event, action) after recording: new, or the one a previous delivery of the
/// same event already made.
#[derive(Debug, Clone)]
pub struct StoredExecution {
    pub id: ExecutionId,
    pub tenant_id: TenantId,
    pub event_id: EventId,
    pub action_id: ActionId,
    pub status: ExecutionStatus,
    pub attempts: i32,
    pub inserted: bool,
}

/// What the executor learns when it tries to take an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The attempt is this executor's to make.
    Claimed {
        max_attempts: i32,
    },
    /// The execution already ended; send nothing.
    Finished(ExecutionStatus),
    /// This attempt already failed and its retry was recorded: only the hand-over to the
    /// scheduler may be missing.
    RetryRecorded {
        next_attempt_at: Option<DateTime<Utc>>,
    },
    /// The job is older than the execution's state (a later attempt exists).
    Stale,
    NotFound,
}

/// An execution's id, status, attempts, max attempts and next attempt time.
type AttemptState = (Uuid, String, i32, i32, Option<DateTime<Utc>>);

/// An attempt an executor wants to take.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    pub tenant_id: TenantId,
    pub execution_id: ExecutionId,
    pub attempt: i32,
    pub lease_until: DateTime<Utc>,
}

/// The result of an attempt, to record with the execution's new state.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub execution_id: ExecutionId,
    pub tenant_id: TenantId,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub request_url: String,
    pub response_status: Option<i32>,
    pub response_headers: Option<serde_json::Value>,
    pub response_body: Option<String>,
    pub outcome: AttemptOutcome,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
}

impl AttemptRecord {
    /// The attempt without what the destination answered (its headers and body), for when
    /// that could not be stored: the attempt itself is still recorded.
    pub fn without_response(&self) -> Self {
        Self {
            execution_id: self.execution_id,
            tenant_id: self.tenant_id,
            attempt: self.attempt,
            started_at: self.started_at,
            duration_ms: self.duration_ms,
            request_url: self.request_url.clone(),
            response_status: self.response_status,
            response_headers: None,
            response_body: None,
            outcome: self.outcome,
            error_kind: self.error_kind,
            error_message: self.error_message.clone(),
        }
    }
}

/// The execution's state after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    RetryAt(DateTime<Utc>),
    Failed,
}

/// An execution as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub event_id: String,
    pub action_id: ActionId,
    pub status: ExecutionStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An attempt as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub request_url: String,
    pub response_status: Option<i32>,
    pub response_headers: Option<serde_json::Value>,
    pub response_body: Option<String>,
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

fn status_of(text: &str) -> ExecutionStatus {
    ExecutionStatus::parse(text).unwrap_or(ExecutionStatus::Pending)
}

impl Store {
    /// Records executions in one statement. For an (event, action) recorded before, returns the
    /// existing row with `inserted = false`, so the caller can re-send its job if it never ran.
    pub async fn insert_executions(
        tx: &mut Transaction<'static, Postgres>,
        executions: &[NewExecution],
    ) -> Result<Vec<StoredExecution>, sqlx::Error> {
        if executions.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = executions.iter().map(|e| e.id.as_uuid()).collect();
        let tenants: Vec<Uuid> = executions.iter().map(|e| e.tenant_id.as_uuid()).collect();
        let events: Vec<&str> = executions.iter().map(|e| e.event_id.as_str()).collect();
        let actions: Vec<Uuid> = executions.iter().map(|e| e.action_id.as_uuid()).collect();
        let max_attempts: Vec<i32> = executions.iter().map(|e| e.max_attempts).collect();
        let priorities: Vec<i32> = executions.iter().map(|e| e.priority).collect();
        // DO UPDATE (a no-op) rather than DO NOTHING so that existing rows are returned too.
        let rows = sqlx::query(
            "INSERT INTO executions (id, tenant_id, event_id, action_id, status, max_attempts, priority)
             SELECT i, t, e, a, 'pending', m, p
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::int[], $6::int[])
                  AS u(i, t, e, a, m, p)
             ON CONFLICT (tenant_id, event_id, action_id)
               DO UPDATE SET tenant_id = EXCLUDED.tenant_id
             RETURNING id, tenant_id, event_id, action_id, status, attempts, (xmax = 0) AS inserted",
        )
        .bind(&ids)
        .bind(&tenants)
        .bind(&events)
        .bind(&actions)
        .bind(&max_attempts)
        .bind(&priorities)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let event_id: String = row.try_get("event_id")?;
                Ok(StoredExecution {
                    id: row.try_get("id")?,
                    tenant_id: row.try_get("tenant_id")?,
                    event_id: EventId::parse(&event_id).unwrap_or_else(|_| EventId::generate()),
                    action_id: row.try_get("action_id")?,
                    status: status_of(&status),
                    attempts: row.try_get("attempts")?,
                    inserted: row.try_get("inserted")?,
                })
            })
            .collect()
    }

    /// Marks an attempt under way as `processing` until `lease_until` (an attempt that runs
    /// long, see `executor::job`): whether the execution was still waiting for it. A repeat
    /// of the same attempt (its executor died) takes the lease over.
    pub async fn mark_processing(&self, request: &ClaimRequest) -> Result<bool, sqlx::Error> {
        let marked = sqlx::query(
            "UPDATE executions
             SET status = 'processing', attempts = $3, lease_until = $4, next_attempt_at = NULL,
                 updated_at = now()
             WHERE tenant_id = $1 AND id = $2
               AND ((status IN ('pending', 'retry_scheduled') AND attempts = $3 - 1)
                    OR (status = 'processing' AND attempts = $3))",
        )
        .bind(request.tenant_id)
        .bind(request.execution_id)
        .bind(request.attempt)
        .bind(request.lease_until)
        .execute(&self.pool)
        .await?;
        Ok(marked.rows_affected() == 1)
    }

    /// Whether each attempt may be made now, without writing anything: the fast path of an
    /// attempt (see `executor::job`) checks, sends, then records; only an attempt that runs
    /// long is marked `processing` with [`Store::mark_processing`] meanwhile. The same attempt
    /// asked for twice in one call is allowed once (the second is `Stale`).
    pub async fn check_attempts(
        &self,
        requests: &[ClaimRequest],
    ) -> Result<Vec<Claim>, sqlx::Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<AttemptState> = sqlx::query_as(
            "SELECT e.id, e.status, e.attempts, e.max_attempts, e.next_attempt_at
             FROM executions e
             JOIN unnest($1::uuid[], $2::uuid[]) AS u(tenant_id, id)
               ON e.tenant_id = u.tenant_id AND e.id = u.id",
        )
        .bind(
            requests
                .iter()
                .map(|r| r.tenant_id.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            requests
                .iter()
                .map(|r| r.execution_id.as_uuid())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(requests
            .iter()
            .enumerate()
            .map(|(at, request)| {
                let Some((_, status, attempts, max_attempts, next_attempt_at)) = rows
                    .iter()
                    .find(|(id, ..)| *id == request.execution_id.as_uuid())
                else {
                    return Claim::NotFound;
                };
                let repeated = requests[..at].iter().any(|r| {
                    r.execution_id == request.execution_id && r.attempt == request.attempt
                });
                let status = status_of(status);
                let due = match status {
                    ExecutionStatus::Pending | ExecutionStatus::RetryScheduled => {
                        *attempts == request.attempt - 1
                    }
                    ExecutionStatus::Processing => *attempts == request.attempt,
                    _ => false,
                };
                if status.is_terminal() {
                    Claim::Finished(status)
                } else if due && !repeated {
                    Claim::Claimed {
                        max_attempts: *max_attempts,
                    }
                } else if status == ExecutionStatus::RetryScheduled && *attempts == request.attempt
                {
                    Claim::RetryRecorded {
                        next_attempt_at: *next_attempt_at,
                    }
                } else {
                    Claim::Stale
                }
            })
            .collect())
    }

    /// Records an attempt and moves its execution on, atomically: only while the execution is
    /// still waiting for this attempt (or marked `processing` with it).
    pub async fn record_attempt(
        &self,
        record: &AttemptRecord,
        outcome: &Outcome,
    ) -> Result<bool, sqlx::Error> {
        let recorded = self
            .record_attempts(&[(record.clone(), outcome.clone())])
            .await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// [`Store::record_attempt`] for many attempts in one statement: every attempt is kept
    /// (for the audit trail), and each says whether it moved its execution on (it does not
    /// when someone else did first: a cancel, or recovery after its lease ran out). An attempt
    /// is recorded whether or not it was marked `processing` first.
    pub async fn record_attempts(
        &self,
        records: &[(AttemptRecord, Outcome)],
    ) -> Result<Vec<bool>, sqlx::Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let column =
            |f: fn(&AttemptRecord) -> Uuid| records.iter().map(|(r, _)| f(r)).collect::<Vec<_>>();
        let states: Vec<(ExecutionStatus, Option<DateTime<Utc>>, bool)> = records
            .iter()
            .map(|(_, outcome)| match outcome {
                Outcome::Succeeded => (ExecutionStatus::Succeeded, None, true),
                Outcome::RetryAt(at) => (ExecutionStatus::RetryScheduled, Some(*at), false),
                Outcome::Failed => (ExecutionStatus::Failed, None, true),
            })
            .collect();
        let updated: Vec<(Uuid, i32)> = sqlx::query_as(
            "WITH input AS (
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[],
                 $5::timestamptz[], $6::bool[], $7::uuid[], $8::timestamptz[], $9::int[],
                 $10::text[], $11::int[], $12::jsonb[], $13::text[], $14::text[], $15::text[],
                 $16::text[])
               AS r(tenant_id, id, attempt, status, next_attempt_at, finished, attempt_id,
                    started_at, duration_ms, request_url, response_status, response_headers,
                    response_body, outcome, error_kind, error_message)
             ),
             kept AS (
               INSERT INTO attempts (id, execution_id, tenant_id, attempt, started_at,
                 duration_ms, request_url, response_status, response_headers, response_body,
                 outcome, error_kind, error_message)
               SELECT attempt_id, id, tenant_id, attempt, started_at, duration_ms, request_url,
                 response_status, response_headers, response_body, outcome, error_kind,
                 error_message
               FROM input
               ON CONFLICT (execution_id, attempt) DO NOTHING
             )
             UPDATE executions e
             SET status = r.status, attempts = r.attempt, next_attempt_at = r.next_attempt_at,
                 lease_until = NULL, last_error = r.error_message, updated_at = now(),
                 finished_at = CASE WHEN r.finished THEN now() ELSE NULL END
             FROM (SELECT DISTINCT ON (tenant_id, id) * FROM input) r
             WHERE e.tenant_id = r.tenant_id AND e.id = r.id
               AND ((e.status = 'processing' AND e.attempts = r.attempt)
                    OR (e.status IN ('pending', 'retry_scheduled')
                        AND e.attempts = r.attempt - 1))
             RETURNING e.id, e.attempts",
        )
        .bind(column(|r| r.tenant_id.as_uuid()))
        .bind(column(|r| r.execution_id.as_uuid()))
        .bind(records.iter().map(|(r, _)| r.attempt).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.0.as_str()).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(states.iter().map(|s| s.2).collect::<Vec<_>>())
        .bind(
            records
                .iter()
                .map(|_| AttemptId::new().as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.started_at)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.duration_ms)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.request_url.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.response_status)
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.response_headers.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.response_body.as_deref().map(storable_text))
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.outcome.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.error_kind.map(|k| k.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            records
                .iter()
                .map(|(r, _)| r.error_message.as_deref().map(storable_text))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await?;
        let moved: Vec<bool> = records
            .iter()
            .map(|(r, _)| {
                updated
                    .iter()
                    .any(|(id, attempt)| *id == r.execution_id.as_uuid() && *attempt == r.attempt)
            })
            .collect();
        for ((record, _), moved) in records.iter().zip(&moved) {
            if !moved {
                // Someone else moved the execution on (cancelled, or recovered after a lease
                // expiry); the attempt is still kept for the audit trail.
                tracing::warn!(execution = %record.execution_id, "execution changed during attempt");
            }
        }
        Ok(moved)
    }

    /// Holds back attempt `attempt` (not yet claimed) until `until` without spending it: the
    /// execution waits as `retry_scheduled` (an open circuit, a limit, a busy destination).
    /// Whether the execution was still waiting for that attempt.
    pub async fn defer_attempt(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
        attempt: i32,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE executions SET status = 'retry_scheduled', next_attempt_at = $4,
               last_error = $5, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND attempts = $3 - 1
               AND status IN ('pending', 'retry_scheduled')",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(attempt)
        .bind(until)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends an execution without an attempt (its action was deleted or disabled meanwhile).
    pub async fn cancel_execution(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
        reason: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE executions SET status = 'cancelled', last_error = $3, lease_until = NULL,
               next_attempt_at = NULL, updated_at = now(), finished_at = now()
             WHERE tenant_id = $1 AND id = $2
               AND status IN ('pending', 'processing', 'retry_scheduled')",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_execution(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
    ) -> Result<Option<ExecutionRecord>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "{SELECT_EXECUTION} WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    pub async fn executions_of_event(
        &self,
        tenant_id: TenantId,
        event_id: &str,
    ) -> Result<Vec<ExecutionRecord>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "{SELECT_EXECUTION} WHERE tenant_id = $1 AND event_id = $2 ORDER BY priority, created_at"
        ))
        .bind(tenant_id)
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    pub async fn attempts_of(
        &self,
        tenant_id: TenantId,
        execution_id: ExecutionId,
    ) -> Result<Vec<AttemptView>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT attempt, started_at, duration_ms, request_url, response_status, response_headers,
                    response_body, outcome, error_kind, error_message
             FROM attempts WHERE tenant_id = $1 AND execution_id = $2 ORDER BY attempt",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptView {
                    attempt: row.try_get("attempt")?,
                    started_at: row.try_get("started_at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    request_url: row.try_get("request_url")?,
                    response_status: row.try_get("response_status")?,
                    response_headers: row.try_get("response_headers")?,
                    response_body: row.try_get("response_body")?,
                    outcome: row.try_get("outcome")?,
                    error_kind: row.try_get("error_kind")?,
                    error_message: row.try_get("error_message")?,
                })
            })
            .collect()
    }
}

pub const SELECT_EXECUTION: &str = "SELECT id, event_id, action_id, status, attempts, max_attempts, \
    next_attempt_at, last_error, created_at, updated_at, finished_at FROM executions";

pub fn execution_from_row(row: &sqlx::postgres::PgRow) -> Result<ExecutionRecord, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(ExecutionRecord {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        action_id: row.try_get("action_id")?,
        status: status_of(&status),
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}
