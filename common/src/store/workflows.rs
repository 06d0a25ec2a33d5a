//! Workflow runs: a row per step, written as the step moves, and a row per attempt of a step.
//!
//! [`Store::advance_runs`] (in `workflow_advance`) is the one place a run moves: in one
//! transaction, with the run's execution row locked, it records a step's end (guarded by its
//! attempt number, so a second copy of the same attempt records nothing), reads every step's state, asks
//! [`crate::workflow::progress`] what follows, and stores that (steps queued, skipped or
//! cancelled; the run's end). The caller hands the queued steps on only after the commit, and
//! acknowledges the job that moved the run only after that: a process that dies in between
//! gets the job again, finds the step ended, and hands the same steps on again.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::Store;
use crate::ids::{ExecutionId, TenantId};
use crate::status::{AttemptOutcome, ErrorKind, ExecutionStatus, StepStatus};
use crate::workflow::{ON_FAILURE, RunEnd};

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
    /// The step's handler type (`http`, `email`, ...).
    pub handler_type: &'static str,
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

/// What [`Store::advance_runs`] did for one run.
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

/// An attempt of a step an executor wants to make.
#[derive(Debug, Clone)]
pub struct ClaimStep {
    pub tenant_id: TenantId,
    pub execution_id: ExecutionId,
    pub step: String,
    pub attempt: i32,
}

/// A run's status and one of its steps: id, status, attempts, next attempt, output, last
/// error, end.
type ClaimRow = (
    Uuid,
    String,
    String,
    String,
    i32,
    Option<DateTime<Utc>>,
    Option<serde_json::Value>,
    Option<String>,
    Option<DateTime<Utc>>,
);

impl Store {
    /// Whether each attempt of a step may be made now (reading only, one statement for all).
    pub async fn claim_steps(&self, requests: &[ClaimStep]) -> Result<Vec<StepClaim>, sqlx::Error> {
        let tenants: Vec<Uuid> = requests.iter().map(|r| r.tenant_id.as_uuid()).collect();
        let ids: Vec<Uuid> = requests.iter().map(|r| r.execution_id.as_uuid()).collect();
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "SELECT e.id, e.status, s.step, s.status, s.attempts, s.next_attempt_at, s.output,
                    s.last_error, s.finished_at
             FROM executions e JOIN workflow_steps s ON s.execution_id = e.id
             WHERE (e.tenant_id, e.id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))",
        )
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_run: HashMap<Uuid, Vec<&ClaimRow>> = HashMap::new();
        for row in &rows {
            by_run.entry(row.0).or_default().push(row);
        }
        Ok(requests
            .iter()
            .map(|request| {
                let rows = by_run
                    .get(&request.execution_id.as_uuid())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                claim_of(request, rows)
            })
            .collect())
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

/// What `request` may do, from its run's rows.
fn claim_of(request: &ClaimStep, rows: &[&ClaimRow]) -> StepClaim {
    let Some(row) = rows.iter().find(|row| row.2 == request.step) else {
        return StepClaim::Stale;
    };
    if ExecutionStatus::parse(&row.1).is_none_or(ExecutionStatus::is_terminal) {
        return StepClaim::Stale;
    }
    let status = StepStatus::parse(&row.3).unwrap_or(StepStatus::Cancelled);
    let attempts = row.4;
    if status.is_terminal() {
        return StepClaim::Ended;
    }
    match status {
        StepStatus::RetryScheduled if attempts == request.attempt => {
            return StepClaim::RetryRecorded {
                next_attempt_at: row.5.unwrap_or_else(Utc::now),
            };
        }
        StepStatus::Queued | StepStatus::RetryScheduled if attempts == request.attempt - 1 => {}
        _ => return StepClaim::Stale,
    }
    let mut outputs = BTreeMap::new();
    let mut failed: Option<(&ClaimRow, Option<DateTime<Utc>>)> = None;
    for row in rows {
        match row.3.as_str() {
            "succeeded" => {
                outputs.insert(
                    row.2.clone(),
                    row.6.clone().unwrap_or(serde_json::Value::Null),
                );
            }
            // The first step that failed (by when it ended) is the run's error.
            "failed" if row.2 != ON_FAILURE && failed.is_none_or(|(_, at)| row.8 < at) => {
                failed = Some((row, row.8));
            }
            _ => {}
        }
    }
    StepClaim::Run {
        outputs,
        failed: failed.map(|(row, _)| (row.2.clone(), row.7.clone())),
    }
}
