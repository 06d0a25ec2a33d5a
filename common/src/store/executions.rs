//! Executions and their attempts. Status changes are guarded updates, so a redelivered job can
//! never move an execution backwards or run an attempt twice in the normal case.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::Store;
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

/// The result of an attempt, to record with the execution's new state.
#[derive(Debug, Clone)]
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

/// The execution's state after an attempt.
#[derive(Debug, Clone)]
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

    /// Takes attempt `attempt` of an execution for this executor, holding it for `lease`.
    /// A redelivered job whose attempt was in flight when its executor died is taken again.
    pub async fn claim_attempt(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
        attempt: i32,
        lease_until: DateTime<Utc>,
    ) -> Result<Claim, sqlx::Error> {
        let claimed: Option<i32> = sqlx::query_scalar(
            "UPDATE executions
             SET status = 'processing', attempts = $3, lease_until = $4, next_attempt_at = NULL,
                 updated_at = now()
             WHERE tenant_id = $1 AND id = $2
               AND ((status IN ('pending', 'retry_scheduled') AND attempts = $3 - 1)
                    OR (status = 'processing' AND attempts = $3))
             RETURNING max_attempts",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(attempt)
        .bind(lease_until)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(max_attempts) = claimed {
            return Ok(Claim::Claimed { max_attempts });
        }
        let row: Option<(String, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
            "SELECT status, attempts, next_attempt_at FROM executions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Claim::NotFound,
            Some((status, _, _)) if status_of(&status).is_terminal() => {
                Claim::Finished(status_of(&status))
            }
            Some((status, attempts, next_attempt_at))
                if status_of(&status) == ExecutionStatus::RetryScheduled && attempts == attempt =>
            {
                Claim::RetryRecorded { next_attempt_at }
            }
            Some(_) => Claim::Stale,
        })
    }

    /// Records an attempt and moves its execution on, atomically. Only the holder of the
    /// attempt (status `processing` with this attempt number) can record it.
    pub async fn record_attempt(
        &self,
        record: &AttemptRecord,
        outcome: &Outcome,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (status, next_attempt_at, finished) = match outcome {
            Outcome::Succeeded => (ExecutionStatus::Succeeded, None, true),
            Outcome::RetryAt(at) => (ExecutionStatus::RetryScheduled, Some(*at), false),
            Outcome::Failed => (ExecutionStatus::Failed, None, true),
        };
        let updated = sqlx::query(
            "UPDATE executions
             SET status = $4, next_attempt_at = $5, lease_until = NULL, last_error = $6,
                 updated_at = now(), finished_at = CASE WHEN $7 THEN now() ELSE NULL END
             WHERE tenant_id = $1 AND id = $2 AND status = 'processing' AND attempts = $3",
        )
        .bind(record.tenant_id)
        .bind(record.execution_id)
        .bind(record.attempt)
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(&record.error_message)
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Someone else moved the execution on (cancelled, or recovered after a lease
            // expiry); the attempt is still worth keeping for the audit trail.
            tracing::warn!(execution = %record.execution_id, "execution changed during attempt");
        }
        sqlx::query(
            "INSERT INTO attempts (id, execution_id, tenant_id, attempt, started_at, duration_ms,
               request_url, response_status, response_headers, response_body, outcome, error_kind,
               error_message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (execution_id, attempt) DO NOTHING",
        )
        .bind(AttemptId::new())
        .bind(record.execution_id)
        .bind(record.tenant_id)
        .bind(record.attempt)
        .bind(record.started_at)
        .bind(record.duration_ms)
        .bind(&record.request_url)
        .bind(record.response_status)
        .bind(&record.response_headers)
        .bind(&record.response_body)
        .bind(record.outcome.as_str())
        .bind(record.error_kind.map(|k| k.as_str()))
        .bind(&record.error_message)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
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

const SELECT_EXECUTION: &str = "SELECT id, event_id, action_id, status, attempts, max_attempts, \
    next_attempt_at, last_error, created_at, updated_at, finished_at FROM executions";

fn execution_from_row(row: &sqlx::postgres::PgRow) -> Result<ExecutionRecord, sqlx::Error> {
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
