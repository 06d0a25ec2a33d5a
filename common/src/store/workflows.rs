//! Workflow runs: a row per step, written as the step moves, and a row per attempt of a step.
//!
//! [`Store::advance_run`] is the one place a run moves: in one transaction, with the run's
//! execution row locked, it records a step's end (guarded by its attempt number, so a second
//! copy of the same attempt records nothing), reads every step's state, asks
//! [`crate::workflow::progress`] what follows, and stores that (steps queued, skipped or
//! cancelled; the run's end). The caller hands the queued steps on only after the commit, and
//! acknowledges the job that moved the run only after that: a process that dies in between
//! gets the job again, finds the step ended, and hands the same steps on again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{Store, storable_text};
use crate::ids::{ExecutionId, TenantId};
use crate::status::{AttemptOutcome, ErrorKind, ExecutionStatus, StepStatus};
use crate::workflow::{Graph, ON_FAILURE, RunEnd, progress};

/// How one attempt of a step ended, as the run records it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEnd {
    Succeeded {
        output: serde_json::Value,
    },
    RetryAt {
        at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
    /// Its `if` did not hold: no attempt was made.
    Skipped,
}

/// One attempt of a step, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct StepAttempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub target: String,
    pub response_status: Option<i32>,
    pub outcome: AttemptOutcome,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
}

/// A step's end to record: which attempt of which step, and what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub step: String,
    pub attempt: i32,
    pub end: StepEnd,
    pub attempt_row: Option<StepAttempt>,
}

/// What [`Store::advance_run`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// The run is gone or had already ended (cancelled, say): nothing was written.
    pub closed: bool,
    /// Whether the step's end given was recorded (not when another copy recorded it first).
    pub recorded: bool,
    /// The steps to hand on now, in the action's order (may hold [`ON_FAILURE`]), each with
    /// the attempt its job makes.
    pub start: Vec<(String, u32)>,
    /// Steps queued before whose attempt is not recorded: handed on again by a job that finds
    /// its own step already ended (the hand-over after it may have been lost).
    pub queued_before: Vec<(String, u32)>,
    /// How the run ended, if it just did.
    pub end: Option<RunEnd>,
}

/// What a step's job finds when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub enum StepClaim {
    /// The attempt is to be made; `outputs` holds every succeeded step's output, `failed`
    /// the step that failed for good and its last error (what `on_failure` reads).
    Run {
        outputs: BTreeMap<String, serde_json::Value>,
        failed: Option<(String, Option<String>)>,
    },
    /// This attempt failed and its retry was recorded: only the hand-over may be missing.
    RetryRecorded { next_attempt_at: DateTime<Utc> },
    /// The step ended already (a second copy of its job): send nothing.
    Ended,
    /// The run ended, or the job is older than the step's state.
    Stale,
}

/// A step as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepView {
    pub step: String,
    pub status: StepStatus,
    pub attempts: i32,
    pub output: Option<serde_json::Value>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Every attempt of the step, in order.
    pub history: Vec<StepAttemptView>,
}

/// One attempt of a step as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StepAttemptView {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub target: String,
    pub response_status: Option<i32>,
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
}

impl Store {
    /// Moves run `execution_id` on: records `ended` (if given), then stores and returns what
    /// follows, in one transaction. A run seen for the first time gets its step rows.
    pub async fn advance_run(
        &self,
        tenant_id: TenantId,
        execution_id: ExecutionId,
        graph: &Graph,
        ended: Option<&StepRecord>,
    ) -> Result<Advanced, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> = sqlx::query_scalar(
            "SELECT status FROM executions WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .fetch_optional(&mut *tx)
        .await?;
        let status = status.as_deref().and_then(ExecutionStatus::parse);
        if status.is_none_or(ExecutionStatus::is_terminal) {
            return Ok(Advanced {
                closed: true,
                ..Advanced::default()
            });
        }
        if status == Some(ExecutionStatus::RetryScheduled) {
            // A run retried by an operator (runs wait in no other way): what did not succeed runs again (one more attempt
            // each, as a retried execution gets), and on_failure with it if it fails again.
            sqlx::query("DELETE FROM workflow_steps WHERE execution_id = $1 AND step = $2")
                .bind(execution_id)
                .bind(ON_FAILURE)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE workflow_steps
                 SET status = 'waiting', next_attempt_at = NULL, queued_at = NULL, finished_at = NULL
                 WHERE execution_id = $1 AND status IN ('failed', 'cancelled', 'queued', 'retry_scheduled')",
            )
            .bind(execution_id)
            .execute(&mut *tx)
            .await?;
        }
        let ids: Vec<&str> = graph.steps.iter().map(|n| n.id.as_str()).collect();
        sqlx::query(
            "INSERT INTO workflow_steps (execution_id, step, tenant_id, status)
             SELECT $2, s, $1, 'waiting' FROM unnest($3::text[]) AS s
             ON CONFLICT (execution_id, step) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let recorded = match ended {
            Some(record) => record_step(&mut tx, tenant_id, execution_id, record).await?,
            None => false,
        };
        let rows: Vec<(String, String, i32)> = sqlx::query_as(
            "SELECT step, status, attempts FROM workflow_steps WHERE execution_id = $1",
        )
        .bind(execution_id)
        .fetch_all(&mut *tx)
        .await?;
        let states: BTreeMap<String, StepStatus> = rows
            .iter()
            .filter_map(|(step, status, _)| Some((step.clone(), StepStatus::parse(status)?)))
            .collect();
        let next_attempt: BTreeMap<&str, u32> = rows
            .iter()
            .map(|(step, _, attempts)| (step.as_str(), (*attempts).max(0) as u32 + 1))
            .collect();
        let queued_before = rows
            .iter()
            .filter(|(_, status, _)| status == "queued")
            .map(|(step, _, _)| (step.clone(), next_attempt[step.as_str()]))
            .collect();
        let next = progress(graph, &states);
        set_status(&mut tx, execution_id, &next.start, StepStatus::Queued).await?;
        set_status(&mut tx, execution_id, &next.skip, StepStatus::Skipped).await?;
        set_status(&mut tx, execution_id, &next.cancel, StepStatus::Cancelled).await?;
        match &next.end {
            Some(end) => {
                let (status, error) = match end {
                    RunEnd::Succeeded => (ExecutionStatus::Succeeded, None),
                    RunEnd::Failed { step } => {
                        let error: Option<String> = sqlx::query_scalar(
                            "SELECT last_error FROM workflow_steps
                             WHERE execution_id = $1 AND step = $2",
                        )
                        .bind(execution_id)
                        .bind(step)
                        .fetch_one(&mut *tx)
                        .await?;
                        let error = format!(
                            "step {step:?} failed: {}",
                            error.as_deref().unwrap_or("no message")
                        );
                        (ExecutionStatus::Failed, Some(error))
                    }
                };
                sqlx::query(
                    "UPDATE executions
                     SET status = $3, last_error = $4, lease_until = NULL, next_attempt_at = NULL,
                         updated_at = now(), finished_at = now()
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant_id)
                .bind(execution_id)
                .bind(status.as_str())
                .bind(error)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                // No lease: a run is resumed by the redelivery of whichever job moved it
                // last, not by recovery, which would hand on again steps still running.
                sqlx::query(
                    "UPDATE executions
                     SET status = 'processing', lease_until = NULL, next_attempt_at = NULL,
                         updated_at = now()
                     WHERE tenant_id = $1 AND id = $2 AND status <> 'processing'",
                )
                .bind(tenant_id)
                .bind(execution_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let start = next
            .start
            .into_iter()
            .map(|step| {
                let attempt = next_attempt.get(step.as_str()).copied().unwrap_or(1);
                (step, attempt)
            })
            .collect();
        Ok(Advanced {
            closed: false,
            recorded,
            start,
            queued_before,
            end: next.end,
        })
    }

    /// Whether attempt `attempt` of `step` may be made now (reading only).
    pub async fn claim_step(
        &self,
        tenant_id: TenantId,
        execution_id: ExecutionId,
        step: &str,
        attempt: i32,
    ) -> Result<StepClaim, sqlx::Error> {
        let row = sqlx::query(
            "SELECT e.status AS run, s.status, s.attempts, s.next_attempt_at
             FROM executions e JOIN workflow_steps s ON s.execution_id = e.id AND s.step = $3
             WHERE e.tenant_id = $1 AND e.id = $2",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .bind(step)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(StepClaim::Stale);
        };
        let run: String = row.try_get("run")?;
        let status: String = row.try_get("status")?;
        let attempts: i32 = row.try_get("attempts")?;
        let next_attempt_at: Option<DateTime<Utc>> = row.try_get("next_attempt_at")?;
        if ExecutionStatus::parse(&run).is_none_or(ExecutionStatus::is_terminal) {
            return Ok(StepClaim::Stale);
        }
        let status = StepStatus::parse(&status).unwrap_or(StepStatus::Cancelled);
        if status.is_terminal() {
            return Ok(StepClaim::Ended);
        }
        match status {
            StepStatus::RetryScheduled if attempts == attempt => {
                return Ok(StepClaim::RetryRecorded {
                    next_attempt_at: next_attempt_at.unwrap_or_else(Utc::now),
                });
            }
            StepStatus::Queued | StepStatus::RetryScheduled if attempts == attempt - 1 => {}
            _ => return Ok(StepClaim::Stale),
        }
        let ended: Vec<(String, String, Option<serde_json::Value>, Option<String>)> =
            sqlx::query_as(
                "SELECT step, status, output, last_error FROM workflow_steps
                 WHERE execution_id = $1 AND status IN ('succeeded', 'failed')
                 ORDER BY finished_at",
            )
            .bind(execution_id)
            .fetch_all(&self.pool)
            .await?;
        let mut outputs = BTreeMap::new();
        let mut failed = None;
        for (step, status, output, error) in ended {
            if status == "succeeded" {
                outputs.insert(step, output.unwrap_or(serde_json::Value::Null));
            } else if failed.is_none() && step != ON_FAILURE {
                failed = Some((step, error));
            }
        }
        Ok(StepClaim::Run { outputs, failed })
    }

    /// A run's steps as the API shows them, in the order they were queued (waiting ones last).
    pub async fn steps_of(
        &self,
        tenant_id: TenantId,
        execution_id: ExecutionId,
    ) -> Result<Vec<StepView>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT step, status, attempts, output, last_error, next_attempt_at, queued_at,
                    finished_at
             FROM workflow_steps WHERE tenant_id = $1 AND execution_id = $2
             ORDER BY queued_at NULLS LAST, step",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let attempts = sqlx::query(
            "SELECT step, attempt, started_at, duration_ms, target, response_status, outcome,
                    error_kind, error_message
             FROM step_attempts WHERE tenant_id = $1 AND execution_id = $2
             ORDER BY step, attempt",
        )
        .bind(tenant_id)
        .bind(execution_id)
        .fetch_all(&self.pool)
        .await?;
        let mut history: BTreeMap<String, Vec<StepAttemptView>> = BTreeMap::new();
        for row in &attempts {
            history
                .entry(row.try_get("step")?)
                .or_default()
                .push(StepAttemptView {
                    attempt: row.try_get("attempt")?,
                    started_at: row.try_get("started_at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    target: row.try_get("target")?,
                    response_status: row.try_get("response_status")?,
                    outcome: row.try_get("outcome")?,
                    error_kind: row.try_get("error_kind")?,
                    error_message: row.try_get("error_message")?,
                });
        }
        rows.iter()
            .map(|row| {
                let step: String = row.try_get("step")?;
                let status: String = row.try_get("status")?;
                Ok(StepView {
                    history: history.remove(&step).unwrap_or_default(),
                    step,
                    status: StepStatus::parse(&status).unwrap_or(StepStatus::Cancelled),
                    attempts: row.try_get("attempts")?,
                    output: row.try_get("output")?,
                    last_error: row.try_get("last_error")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    queued_at: row.try_get("queued_at")?,
                    finished_at: row.try_get("finished_at")?,
                })
            })
            .collect()
    }
}

/// Records `record` if the step is still waiting for that attempt; whether it was.
async fn record_step(
    tx: &mut sqlx::PgConnection,
    tenant_id: TenantId,
    execution_id: ExecutionId,
    record: &StepRecord,
) -> Result<bool, sqlx::Error> {
    let (status, output, error, next_at, attempts) = match &record.end {
        StepEnd::Succeeded { output } => (
            StepStatus::Succeeded,
            Some(output),
            None,
            None,
            record.attempt,
        ),
        StepEnd::RetryAt { at, error } => (
            StepStatus::RetryScheduled,
            None,
            Some(error.as_str()),
            Some(*at),
            record.attempt,
        ),
        StepEnd::Failed { error } => (
            StepStatus::Failed,
            None,
            Some(error.as_str()),
            None,
            record.attempt,
        ),
        StepEnd::Skipped => (StepStatus::Skipped, None, None, None, record.attempt - 1),
    };
    let finished = status.is_terminal();
    let updated = sqlx::query(
        "UPDATE workflow_steps
         SET status = $4, attempts = $5, output = COALESCE($6, output), last_error = $7,
             next_attempt_at = $8, finished_at = CASE WHEN $9 THEN now() ELSE NULL END
         WHERE tenant_id = $1 AND execution_id = $2 AND step = $3
           AND status IN ('queued', 'retry_scheduled') AND attempts = $10 - 1",
    )
    .bind(tenant_id)
    .bind(execution_id)
    .bind(&record.step)
    .bind(status.as_str())
    .bind(attempts)
    .bind(output)
    .bind(error.map(storable_text))
    .bind(next_at)
    .bind(finished)
    .bind(record.attempt)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(attempt) = &record.attempt_row {
        sqlx::query(
            "INSERT INTO step_attempts (execution_id, step, tenant_id, attempt, started_at,
               duration_ms, target, response_status, outcome, error_kind, error_message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT DO NOTHING",
        )
        .bind(execution_id)
        .bind(&record.step)
        .bind(tenant_id)
        .bind(record.attempt)
        .bind(attempt.started_at)
        .bind(attempt.duration_ms)
        .bind(storable_text(&attempt.target))
        .bind(attempt.response_status)
        .bind(attempt.outcome.as_str())
        .bind(attempt.error_kind.map(ErrorKind::as_str))
        .bind(attempt.error_message.as_deref().map(storable_text))
        .execute(&mut *tx)
        .await?;
    }
    Ok(true)
}

/// Sets `steps` (still waiting) to `status`; the on_failure handler's row is made when it is
/// first queued.
async fn set_status(
    tx: &mut sqlx::PgConnection,
    execution_id: ExecutionId,
    steps: &[String],
    status: StepStatus,
) -> Result<(), sqlx::Error> {
    if steps.is_empty() {
        return Ok(());
    }
    if status == StepStatus::Queued && steps.iter().any(|s| s == ON_FAILURE) {
        sqlx::query(
            "INSERT INTO workflow_steps (execution_id, step, tenant_id, status)
             SELECT id, $2, tenant_id, 'waiting' FROM executions WHERE id = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(execution_id)
        .bind(ON_FAILURE)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE workflow_steps
         SET status = $3,
             queued_at = CASE WHEN $3 = 'queued' THEN now() ELSE queued_at END,
             finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE now() END
         WHERE execution_id = $1 AND step = ANY($2) AND status = 'waiting'",
    )
    .bind(execution_id)
    .bind(steps)
    .bind(status.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
