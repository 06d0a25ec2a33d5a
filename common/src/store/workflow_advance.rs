//! Moving workflow runs on, many at once: [`Store::advance_runs`] records steps' ends and
//! stores what follows for a batch of runs in one transaction, a handful of statements for
//! the whole batch (each run's decision is still its own, made by
//! [`crate::workflow::progress`] on its rows as locked). One commit for many step ends is what
//! lets runs go at the rate of single executions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sqlx::PgConnection;
use uuid::Uuid;

use super::workflows::{Advanced, StepEnd, StepRecord};
use super::{Store, storable_text};
use crate::ids::{ExecutionId, TenantId};
use crate::status::{ExecutionStatus, StepStatus};
use crate::workflow::{Graph, ON_FAILURE, RunEnd, progress};

/// One run to move on: its graph (the action's steps as the caller read them) and, for a
/// step's job, that step's end.
#[derive(Debug, Clone)]
pub struct Advance {
    pub tenant_id: TenantId,
    pub execution_id: ExecutionId,
    pub graph: Arc<Graph>,
    pub ended: Option<StepRecord>,
}

/// A step's state as the decision reads it.
struct Row {
    status: StepStatus,
    attempts: i32,
    last_error: Option<String>,
}

impl Store {
    /// Moves each run on (see [`Store::advance_runs`]).
    pub async fn advance_run(
        &self,
        tenant_id: TenantId,
        execution_id: ExecutionId,
        graph: &Graph,
        ended: Option<&StepRecord>,
    ) -> Result<Advanced, sqlx::Error> {
        let request = Advance {
            tenant_id,
            execution_id,
            graph: Arc::new(graph.clone()),
            ended: ended.cloned(),
        };
        let mut answers = self.advance_runs(std::slice::from_ref(&request)).await?;
        Ok(answers.pop().unwrap_or_default())
    }

    /// Records each request's step end (if the step still waits for that attempt) and stores
    /// what follows for each run, in one transaction, the runs' execution rows locked. A run
    /// seen for the first time gets its step rows; a run an operator retried gets the steps
    /// that did not succeed back. When one batch holds several ends of one run, the steps
    /// they start go to the last of them.
    pub async fn advance_runs(&self, requests: &[Advance]) -> Result<Vec<Advanced>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let runs = lock_runs(&mut tx, requests).await?;
        let open = |r: &Advance| {
            runs.get(&r.execution_id.as_uuid())
                .is_some_and(|s| !s.is_terminal())
        };
        let retried: Vec<Uuid> = runs
            .iter()
            .filter(|(_, s)| **s == ExecutionStatus::RetryScheduled)
            .map(|(id, _)| *id)
            .collect();
        reopen_retried(&mut tx, &retried).await?;
        insert_steps(&mut tx, requests.iter().filter(|r| open(r))).await?;
        let recorded = record_ends(&mut tx, requests, &open).await?;

        let open_ids: Vec<Uuid> = runs
            .iter()
            .filter(|(_, s)| !s.is_terminal())
            .map(|(id, _)| *id)
            .collect();
        let rows = read_steps(&mut tx, &open_ids).await?;
        // The last request of each run decides it.
        let mut last: HashMap<Uuid, usize> = HashMap::new();
        for (i, request) in requests.iter().enumerate() {
            if open(request) {
                last.insert(request.execution_id.as_uuid(), i);
            }
        }
        let mut answers: Vec<Advanced> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| Advanced {
                closed: !open(r),
                recorded: recorded.contains(&i),
                ..Advanced::default()
            })
            .collect();
        let mut moves: Vec<(Uuid, String, StepStatus)> = Vec::new();
        let mut ends: Vec<(Uuid, ExecutionStatus, Option<String>)> = Vec::new();
        let mut running: Vec<Uuid> = Vec::new();
        for (&run, &i) in &last {
            let request = &requests[i];
            let empty = BTreeMap::new();
            let steps = rows.get(&run).unwrap_or(&empty);
            let states: BTreeMap<String, StepStatus> = steps
                .iter()
                .map(|(id, row)| (id.clone(), row.status))
                .collect();
            let next = progress(&request.graph, &states);
            let attempt_of = |step: &str| {
                steps
                    .get(step)
                    .map_or(1, |row| row.attempts.max(0) as u32 + 1)
            };
            for (step, status) in [
                (&next.start, StepStatus::Queued),
                (&next.skip, StepStatus::Skipped),
                (&next.cancel, StepStatus::Cancelled),
            ]
            .into_iter()
            .flat_map(|(steps, status)| steps.iter().map(move |s| (s, status)))
            {
                moves.push((run, step.clone(), status));
            }
            let answer = &mut answers[i];
            answer.start = next
                .start
                .iter()
                .map(|s| (s.clone(), attempt_of(s)))
                .collect();
            answer.queued_before = steps
                .iter()
                .filter(|(_, row)| row.status == StepStatus::Queued)
                .map(|(id, row)| (id.clone(), row.attempts.max(0) as u32 + 1))
                .collect();
            match &next.end {
                Some(RunEnd::Succeeded) => ends.push((run, ExecutionStatus::Succeeded, None)),
                Some(RunEnd::Failed { step }) => {
                    let error = steps.get(step).and_then(|row| row.last_error.as_deref());
                    let error = format!("step {step:?} failed: {}", error.unwrap_or("no message"));
                    ends.push((run, ExecutionStatus::Failed, Some(error)));
                }
                None if runs.get(&run) != Some(&ExecutionStatus::Processing) => running.push(run),
                None => {}
            }
            answer.end = next.end;
        }
        // Every request of a run decided by another request still learns what it queued.
        for (i, request) in requests.iter().enumerate() {
            let run = request.execution_id.as_uuid();
            if last.get(&run).is_some_and(|&j| j != i) {
                answers[i].queued_before = answers[last[&run]].queued_before.clone();
            }
        }
        apply_moves(&mut tx, &moves).await?;
        end_runs(&mut tx, &ends, &running).await?;
        tx.commit().await?;
        Ok(answers)
    }
}

/// Locks the requests' runs (in id order, so batches that share runs cannot deadlock) and
/// reads their statuses.
async fn lock_runs(
    tx: &mut PgConnection,
    requests: &[Advance],
) -> Result<HashMap<Uuid, ExecutionStatus>, sqlx::Error> {
    let tenants: Vec<Uuid> = requests.iter().map(|r| r.tenant_id.as_uuid()).collect();
    let ids: Vec<Uuid> = requests.iter().map(|r| r.execution_id.as_uuid()).collect();
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, status FROM executions
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
         ORDER BY id FOR UPDATE",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, status)| Some((id, ExecutionStatus::parse(&status)?)))
        .collect())
}

/// Runs an operator retried: what did not succeed runs again (one more attempt each, as a
/// retried execution gets), and on_failure with it if a step fails again.
async fn reopen_retried(tx: &mut PgConnection, runs: &[Uuid]) -> Result<(), sqlx::Error> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM workflow_steps WHERE execution_id = ANY($1) AND step = $2")
        .bind(runs)
        .bind(ON_FAILURE)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE workflow_steps
         SET status = 'waiting', next_attempt_at = NULL, queued_at = NULL, finished_at = NULL
         WHERE execution_id = ANY($1)
           AND status IN ('failed', 'cancelled', 'queued', 'retry_scheduled')",
    )
    .bind(runs)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The step rows of runs moved by their run's own job (seen for the first time, or again).
async fn insert_steps<'a>(
    tx: &mut PgConnection,
    requests: impl Iterator<Item = &'a Advance>,
) -> Result<(), sqlx::Error> {
    let (mut runs, mut tenants, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    for request in requests.filter(|r| r.ended.is_none()) {
        for node in &request.graph.steps {
            runs.push(request.execution_id.as_uuid());
            tenants.push(request.tenant_id.as_uuid());
            steps.push(node.id.as_str());
        }
    }
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO workflow_steps (execution_id, step, tenant_id, status)
         SELECT * , 'waiting' FROM unnest($1::uuid[], $2::text[], $3::uuid[])
         ON CONFLICT (execution_id, step) DO NOTHING",
    )
    .bind(&runs)
    .bind(&steps)
    .bind(&tenants)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records each open run's step end if its step still waits for that attempt; the indexes
/// of the requests recorded (of two copies of one attempt, the first).
async fn record_ends(
    tx: &mut PgConnection,
    requests: &[Advance],
    open: &(dyn Fn(&Advance) -> bool + Sync),
) -> Result<HashSet<usize>, sqlx::Error> {
    let ends: Vec<(usize, &Advance, &StepRecord)> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| open(r))
        .filter_map(|(i, r)| r.ended.as_ref().map(|e| (i, r, e)))
        .collect();
    if ends.is_empty() {
        return Ok(HashSet::new());
    }
    let mut columns = EndColumns::default();
    for (_, request, record) in &ends {
        columns.push(request, record);
    }
    let updated: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE workflow_steps s
         SET status = i.status, attempts = i.attempts, output = COALESCE(i.output, s.output),
             last_error = i.error, next_attempt_at = i.next_at,
             finished_at = CASE WHEN i.finished THEN now() ELSE NULL END
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::jsonb[],
                     $7::text[], $8::timestamptz[], $9::bool[], $10::int[])
              AS i(run, tenant, step, status, attempts, output, error, next_at, finished, attempt)
         WHERE s.execution_id = i.run AND s.tenant_id = i.tenant AND s.step = i.step
           AND s.status IN ('queued', 'retry_scheduled') AND s.attempts = i.attempt - 1
         RETURNING s.execution_id, s.step",
    )
    .bind(&columns.runs)
    .bind(&columns.tenants)
    .bind(&columns.steps)
    .bind(&columns.statuses)
    .bind(&columns.attempts)
    .bind(&columns.outputs)
    .bind(&columns.errors)
    .bind(&columns.next_at)
    .bind(&columns.finished)
    .bind(&columns.attempt)
    .fetch_all(&mut *tx)
    .await?;
    let mut done: HashSet<(Uuid, String)> = updated.into_iter().collect();
    let mut recorded = HashSet::new();
    let mut attempts = AttemptColumns::default();
    for (i, request, record) in ends {
        if done.remove(&(request.execution_id.as_uuid(), record.step.clone())) {
            recorded.insert(i);
            attempts.push(request, record);
        }
    }
    attempts.insert(tx).await?;
    Ok(recorded)
}

/// The step-end columns of [`record_ends`]'s statement.
#[derive(Default)]
struct EndColumns {
    runs: Vec<Uuid>,
    tenants: Vec<Uuid>,
    steps: Vec<String>,
    statuses: Vec<&'static str>,
    attempts: Vec<i32>,
    outputs: Vec<Option<serde_json::Value>>,
    errors: Vec<Option<String>>,
    next_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    finished: Vec<bool>,
    attempt: Vec<i32>,
}

impl EndColumns {
    fn push(&mut self, request: &Advance, record: &StepRecord) {
        let (status, output, error, next_at, attempts) = match &record.end {
            StepEnd::Succeeded { output } => (
                StepStatus::Succeeded,
                Some(output.clone()),
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
        self.runs.push(request.execution_id.as_uuid());
        self.tenants.push(request.tenant_id.as_uuid());
        self.steps.push(record.step.clone());
        self.statuses.push(status.as_str());
        self.attempts.push(attempts);
        self.outputs.push(output);
        self.errors
            .push(error.map(|e| storable_text(e).into_owned()));
        self.next_at.push(next_at);
        self.finished.push(status.is_terminal());
        self.attempt.push(record.attempt);
    }
}

/// The attempt rows of the step ends recorded.
#[derive(Default)]
struct AttemptColumns {
    runs: Vec<Uuid>,
    tenants: Vec<Uuid>,
    steps: Vec<String>,
    attempt: Vec<i32>,
    started_at: Vec<chrono::DateTime<chrono::Utc>>,
    duration_ms: Vec<i32>,
    targets: Vec<String>,
    statuses: Vec<Option<i32>>,
    outcomes: Vec<&'static str>,
    error_kinds: Vec<Option<&'static str>>,
    errors: Vec<Option<String>>,
    handler_types: Vec<&'static str>,
}

impl AttemptColumns {
    fn push(&mut self, request: &Advance, record: &StepRecord) {
        let Some(row) = &record.attempt_row else {
            return;
        };
        self.runs.push(request.execution_id.as_uuid());
        self.tenants.push(request.tenant_id.as_uuid());
        self.steps.push(record.step.clone());
        self.attempt.push(record.attempt);
        self.started_at.push(row.started_at);
        self.duration_ms.push(row.duration_ms);
        self.targets.push(storable_text(&row.target).into_owned());
        self.statuses.push(row.response_status);
        self.outcomes.push(row.outcome.as_str());
        self.error_kinds.push(row.error_kind.map(|k| k.as_str()));
        self.errors.push(
            row.error_message
                .as_deref()
                .map(|e| storable_text(e).into_owned()),
        );
        self.handler_types.push(row.handler_type);
    }

    async fn insert(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.runs.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO step_attempts (execution_id, tenant_id, step, attempt, started_at,
               duration_ms, target, response_status, outcome, error_kind, error_message,
               handler_type)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[],
               $5::timestamptz[], $6::int[], $7::text[], $8::int[], $9::text[], $10::text[],
               $11::text[], $12::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.runs)
        .bind(&self.tenants)
        .bind(&self.steps)
        .bind(&self.attempt)
        .bind(&self.started_at)
        .bind(&self.duration_ms)
        .bind(&self.targets)
        .bind(&self.statuses)
        .bind(&self.outcomes)
        .bind(&self.error_kinds)
        .bind(&self.errors)
        .bind(&self.handler_types)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Every step of `runs`, by run and step id.
async fn read_steps(
    tx: &mut PgConnection,
    runs: &[Uuid],
) -> Result<HashMap<Uuid, BTreeMap<String, Row>>, sqlx::Error> {
    let rows: Vec<(Uuid, String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT execution_id, step, status, attempts, last_error FROM workflow_steps
         WHERE execution_id = ANY($1)",
    )
    .bind(runs)
    .fetch_all(&mut *tx)
    .await?;
    let mut by_run: HashMap<Uuid, BTreeMap<String, Row>> = HashMap::new();
    for (run, step, status, attempts, last_error) in rows {
        let Some(status) = StepStatus::parse(&status) else {
            continue;
        };
        by_run.entry(run).or_default().insert(
            step,
            Row {
                status,
                attempts,
                last_error,
            },
        );
    }
    Ok(by_run)
}

/// Steps still waiting moved to their next status; the on_failure handler's row is made when
/// it is first queued.
async fn apply_moves(
    tx: &mut PgConnection,
    moves: &[(Uuid, String, StepStatus)],
) -> Result<(), sqlx::Error> {
    if moves.is_empty() {
        return Ok(());
    }
    let handlers: Vec<Uuid> = moves
        .iter()
        .filter(|(_, step, _)| step == ON_FAILURE)
        .map(|(run, _, _)| *run)
        .collect();
    if !handlers.is_empty() {
        sqlx::query(
            "INSERT INTO workflow_steps (execution_id, step, tenant_id, status)
             SELECT id, $2, tenant_id, 'waiting' FROM executions WHERE id = ANY($1)
             ON CONFLICT DO NOTHING",
        )
        .bind(&handlers)
        .bind(ON_FAILURE)
        .execute(&mut *tx)
        .await?;
    }
    let runs: Vec<Uuid> = moves.iter().map(|(run, _, _)| *run).collect();
    let steps: Vec<&str> = moves.iter().map(|(_, step, _)| step.as_str()).collect();
    let statuses: Vec<&str> = moves.iter().map(|(_, _, s)| s.as_str()).collect();
    sqlx::query(
        "UPDATE workflow_steps s
         SET status = m.status,
             queued_at = CASE WHEN m.status = 'queued' THEN now() ELSE s.queued_at END,
             finished_at = CASE WHEN m.status = 'queued' THEN NULL ELSE now() END
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS m(run, step, status)
         WHERE s.execution_id = m.run AND s.step = m.step AND s.status = 'waiting'",
    )
    .bind(&runs)
    .bind(&steps)
    .bind(&statuses)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Runs that ended get their end; runs that just started are `processing` (without a lease: a
/// run is resumed by the redelivery of whichever job moved it last, not by lease recovery,
/// which would hand on again steps still running).
async fn end_runs(
    tx: &mut PgConnection,
    ends: &[(Uuid, ExecutionStatus, Option<String>)],
    running: &[Uuid],
) -> Result<(), sqlx::Error> {
    if !ends.is_empty() {
        let runs: Vec<Uuid> = ends.iter().map(|(run, _, _)| *run).collect();
        let statuses: Vec<&str> = ends.iter().map(|(_, s, _)| s.as_str()).collect();
        let errors: Vec<Option<&str>> = ends.iter().map(|(_, _, e)| e.as_deref()).collect();
        sqlx::query(
            "UPDATE executions e
             SET status = r.status, last_error = r.error, lease_until = NULL,
                 next_attempt_at = NULL, updated_at = now(), finished_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(run, status, error)
             WHERE e.id = r.run",
        )
        .bind(&runs)
        .bind(&statuses)
        .bind(&errors)
        .execute(&mut *tx)
        .await?;
    }
    if !running.is_empty() {
        sqlx::query(
            "UPDATE executions
             SET status = 'processing', lease_until = NULL, next_attempt_at = NULL,
                 updated_at = now()
             WHERE id = ANY($1)",
        )
        .bind(running)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
