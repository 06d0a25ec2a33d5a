//! One job, from its broker message to a recorded attempt: the order of the checks is the
//! point of this file.
//!
//! 1. The action (cached): gone, disabled or deleted ends the execution as `cancelled`.
//! 2. The action's limits, then the destination's circuit (cached). Anything that cannot go
//!    soon is *held*: rescheduled through the scheduler with the same attempt number, so
//!    waiting never spends an attempt.
//! 3. The check (batched with other jobs' checks, reading only): a redelivered job for an
//!    attempt that was already recorded sends nothing.
//! 4. The destination's share of this process and one of the process's slots, held only while
//!    the request is out: held across the database round trips too, they capped a fast
//!    destination at its share divided by the database's latency (64 slots over ~25 ms under
//!    load: 2.5k deliveries/s), and the waits turned into holds that loaded the database more.
//! 5. The attempt, by handler type; its outcome feeds the circuit. An attempt still running
//!    after [`MARK_PROCESSING_AFTER`] is marked `processing` with a lease, so that operators
//!    see it and recovery can tell it from one whose executor died. Faster attempts (nearly all)
//!    go straight from waiting to their outcome: every status change rewrites the execution's
//!    row and its indexes, and skipping this one took a third of the database's work.
//! 6. The record (batched): attempt and execution state in one statement, guarded by the
//!    attempt number. Then the next attempt goes to the scheduler, or a failed execution to
//!    `herald.failed`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_common::broker::topology::{DELAYED_EXCHANGE, DELAYED_ROUTING_KEY, FAILED_EXCHANGE};
use herald_common::broker::{Outgoing, Publisher};
use herald_common::circuit::Admission;
use herald_common::clock::SharedClock;
use herald_common::messages::{DelayedJob, ExecutionFailed, ExecutionJob, Lane};
use herald_common::metrics::{Metrics, PathStep, Stage};
use herald_common::status::ErrorKind;
use herald_common::store::{
    Advance, Advanced, AttemptRecord, Claim, ClaimRequest, ClaimStep, Earlier, Outcome,
    SecretValues, StepClaim, Store,
};
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind};
use herald_handlers::outcome::Verdict;
use herald_handlers::{Action, Context, Outbound, Performed};
use rand::Rng;
use tokio::sync::Semaphore;

use crate::actions::ActionCache;
use crate::batcher::{Batcher, CallError};
use crate::circuits::Circuits;
use crate::decide::{Attempt, Decision, decide};
use crate::gates::{ActionLimits, Busy, DestinationGates};
use crate::secrets::SecretCache;

/// How long an attempt may wait in memory for its action's limits.
const LIMIT_WAIT: Duration = Duration::from_secs(2);
/// When an attempt held back by a busy destination or a full action comes back.
const BUSY_HOLD: Duration = Duration::from_secs(1);
/// When an attempt waiting for its event's lower priorities looks again.
const SEQUENCE_HOLD: Duration = Duration::from_millis(500);
/// How long an attempt runs before it is marked `processing`.
pub const MARK_PROCESSING_AFTER: Duration = Duration::from_secs(1);

/// Everything a job needs, shared by all of them.
pub struct Executor {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    /// The guarded client every handler sends through.
    pub outbound: Outbound,
    pub slots: Semaphore,
    pub lease: Duration,
    pub actions: ActionCache,
    /// The tenant secrets actions' templates use.
    pub secrets: SecretCache,
    pub circuits: Arc<Circuits>,
    pub gates: DestinationGates,
    pub limits: ActionLimits,
    /// Checks whether attempts may be made, many per statement.
    pub checks: Batcher<ClaimRequest, Claim>,
    pub records: Batcher<(AttemptRecord, Outcome), bool>,
    /// Whether workflow steps' attempts may be made, many per statement.
    pub step_claims: Batcher<ClaimStep, StepClaim>,
    /// Workflow runs moved on, many per transaction.
    pub advances: Batcher<Advance, Advanced>,
    pub clock: SharedClock,
}

impl Executor {
    /// Runs one job to a recorded result (or a hold). An `Err` means infrastructure trouble
    /// (database or broker): the job must be retried as a whole.
    pub async fn run_job(&self, job: &ExecutionJob) -> anyhow::Result<()> {
        // Out once recorded, held or handed on; a job that failed comes back, counted in again.
        let work = self.metrics.stage_enter(Stage::Executor, 1);
        // The attempt's span, a child of whoever handed the job on (the matcher, or the
        // scheduler's release); the job carries it on to a retry.
        let mut attributes = vec![
            KeyValue::new("herald.execution_id", job.execution_id.to_string()),
            KeyValue::new("herald.attempt", i64::from(job.attempt)),
            KeyValue::new(
                "herald.event_type",
                job.event.event_type.as_str().to_owned(),
            ),
        ];
        // A workflow's steps: each a span of the run's one trace (each step's job carries on
        // the span of the job that started it).
        if let Some(step) = &job.step {
            attributes.push(KeyValue::new("herald.step", step.clone()));
        }
        let mut span = HeraldSpan::start(
            "herald.attempt",
            SpanKind::Consumer,
            job.event.trace.as_deref(),
            attributes,
        );
        let mut traced = job.clone();
        traced.event.trace = Some(span.traceparent());
        let result = self.attempt(&traced).await;
        match &result {
            Ok(()) => work.done_all(),
            Err(error) => span.set_error(format!("{error:#}")),
        }
        result
    }

    async fn attempt(&self, job: &ExecutionJob) -> anyhow::Result<()> {
        let received = tokio::time::Instant::now();
        let Some(action) = self.actions.get(job.tenant_id, job.action_id).await? else {
            return self.cancel(job, "action no longer exists").await;
        };
        if action.deleted_at.is_some() {
            return self.cancel(job, "action deleted").await;
        }
        if !action.spec.matching.enabled {
            return self.cancel(job, "action disabled").await;
        }
        // A workflow's steps are past this check: their run made it before its first step.
        if action.spec.after_lower_priorities && job.step.is_none() {
            let priority = action.spec.matching.priority.0;
            match self
                .store
                .earlier_executions(job.tenant_id, &job.event.id, priority)
                .await?
            {
                Earlier::Succeeded => {}
                Earlier::Running => {
                    let until = self.clock.now() + SEQUENCE_HOLD;
                    return self.hold(job, until, "lower_priorities_running").await;
                }
                Earlier::NotSucceeded { execution, status } => {
                    if action.spec.requires_success {
                        let reason = format!(
                            "an action of this event with a lower priority number did not \
                             succeed (execution {execution} {status})"
                        );
                        return self.cancel(job, &reason).await;
                    }
                }
            }
        }
        if let Some(workflow) = action.spec.handler.workflow() {
            return self.run_workflow(job, &action, workflow).await;
        }
        let endpoint = action.spec.handler.destination().map(str::to_owned);

        let taken = match self
            .limits
            .take(&action, job.execution_id, self.lease, LIMIT_WAIT)
            .await?
        {
            Ok(taken) => taken,
            Err(Busy::RateLimited(after)) => {
                return self
                    .hold(job, self.clock.now() + after.max(BUSY_HOLD), "rate_limited")
                    .await;
            }
            Err(Busy::Concurrency) => {
                return self
                    .hold(job, self.clock.now() + BUSY_HOLD, "max_concurrency")
                    .await;
            }
        };
        let result = self
            .attempt_within_limits(job, &action, endpoint, received)
            .await;
        self.limits.release(taken).await;
        result
    }

    async fn attempt_within_limits(
        &self,
        job: &ExecutionJob,
        action: &Action,
        endpoint: Option<String>,
        received: tokio::time::Instant,
    ) -> anyhow::Result<()> {
        // The cached circuit first: no waiting for a destination that is open.
        let admission = endpoint.as_deref().map(|endpoint| {
            self.circuits
                .admit(job.tenant_id, endpoint, self.clock.now())
        });
        if let Some(Admission::HoldUntil(until)) = admission {
            return self.hold(job, until, "circuit_open").await;
        }
        // The check next (batched, reading only), before any slot is taken: slots are held
        // only while the request is out, so a destination's share is spent on its own speed,
        // not on database round trips shared with every other job.
        let request = ClaimRequest {
            tenant_id: job.tenant_id,
            execution_id: job.execution_id,
            attempt: job.attempt as i32,
            lease_until: self.clock.now() + chrono::Duration::from_std(self.lease)?,
        };
        match self.checks.call(request).await? {
            Claim::Claimed { .. } => {}
            Claim::RetryRecorded { next_attempt_at } => {
                // The retry was recorded but its hand-over may have been lost: hand it over
                // again (the scheduler ignores a job id it already holds).
                let due = next_attempt_at.unwrap_or_else(Utc::now);
                return self.schedule_retry(job, due).await;
            }
            Claim::Finished(_) | Claim::Stale | Claim::NotFound => return Ok(()),
        }
        let secrets = self
            .secrets
            .get(job.tenant_id, &action.spec.handler.secret_names())
            .await?;
        // Then the destination's share of this process and, for a trial, the probe claim;
        // then one of the process's slots.
        let mut probe = false;
        let mut destination = None;
        if let Some(endpoint) = &endpoint {
            match self.gates.enter(job.tenant_id, endpoint).await {
                Some(slot) => destination = Some(slot),
                None => {
                    return self
                        .hold(job, self.clock.now() + BUSY_HOLD, "destination_busy")
                        .await;
                }
            }
            if admission == Some(Admission::TryProbe) {
                let now = self.clock.now();
                if self
                    .circuits
                    .claim_probe(job.tenant_id, endpoint, now)
                    .await?
                {
                    probe = true;
                } else {
                    // Another executor probes; this attempt waits for its verdict.
                    return self.hold(job, now + BUSY_HOLD, "circuit_open").await;
                }
            }
        }
        let slot = self.slots.acquire().await?;

        self.metrics.step_since(PathStep::ExecutorPrepare, received);
        let started = self.clock.now();
        let performing = self.perform(job, action, &secrets);
        tokio::pin!(performing);
        let performed = tokio::select! {
            performed = &mut performing => performed,
            () = tokio::time::sleep(MARK_PROCESSING_AFTER) => {
                let request = ClaimRequest {
                    lease_until: self.clock.now() + chrono::Duration::from_std(self.lease)?,
                    ..request
                };
                if let Err(error) = self.store.mark_processing(&request).await {
                    // Only visibility and the recovery lease are lost; the attempt goes on.
                    tracing::warn!(error = %error, "a long attempt was not marked processing");
                }
                performing.await
            }
        };
        drop(slot);
        drop(destination);
        if let Some(endpoint) = &endpoint {
            self.report_to_circuit(job, endpoint, &performed, probe)
                .await;
        }
        let recording = tokio::time::Instant::now();
        let concluded = self.conclude(job, action, performed, started).await;
        self.metrics.step_since(PathStep::ExecutorRecord, recording);
        concluded
    }

    /// Makes the attempt, by handler type.
    async fn perform(
        &self,
        job: &ExecutionJob,
        action: &Action,
        secrets: &SecretValues,
    ) -> Performed {
        let context = Context {
            job,
            now: self.clock.now(),
            action_name: &action.spec.matching.name,
            secrets,
            outbound: &self.outbound,
            publisher: Some(&self.publisher),
            steps: None,
        };
        action.spec.handler.execute(&context).await
    }

    /// A response that says the endpoint is up (anything but a transport error, a timeout or
    /// a server-side status) counts as a success for its circuit. An attempt that never
    /// reached it (a template that did not render, a token refused) says nothing about it.
    pub(crate) async fn report_to_circuit(
        &self,
        job: &ExecutionJob,
        endpoint: &str,
        performed: &Performed,
        probe: bool,
    ) {
        let reached = !matches!(
            performed.delivered.error,
            Some((ErrorKind::Template | ErrorKind::Auth, _))
        );
        if !reached {
            // A probe's claim lapses with its lease, and another attempt probes.
            return;
        }
        let healthy = match &performed.verdict {
            Verdict::Success | Verdict::Gone => true,
            Verdict::Fail { kind } => matches!(
                kind,
                ErrorKind::HttpStatus | ErrorKind::Redirect | ErrorKind::SmtpRejected
            ),
            Verdict::Retry { .. } => false,
        };
        let error = performed
            .delivered
            .error
            .as_ref()
            .map(|(_, message)| message.clone())
            .or_else(|| performed.delivered.status.map(|s| format!("HTTP {s}")));
        let error = (!healthy).then_some(error).flatten();
        if probe {
            if let Err(e) = self
                .circuits
                .probe_result(
                    job.tenant_id,
                    endpoint,
                    healthy,
                    error.as_deref(),
                    self.clock.now(),
                )
                .await
            {
                // The probe's lease runs out and another executor probes again.
                tracing::warn!(error = %e, endpoint, "probe result not recorded");
            }
        } else {
            self.circuits
                .record(job.tenant_id, endpoint, healthy, error.as_deref());
        }
    }

    /// Records the attempt and moves the execution on.
    async fn conclude(
        &self,
        job: &ExecutionJob,
        action: &Action,
        performed: Performed,
        started: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let now = self.clock.now();
        let attempt = Attempt {
            execution_id: job.execution_id,
            tenant_id: job.tenant_id,
            number: job.attempt,
            started_at: started,
        };
        let duration = performed.delivered.duration;
        let Decision {
            record,
            outcome,
            disable_action,
        } = decide(
            attempt,
            performed,
            &action.spec.matching.retry,
            now,
            rand::rng().random(),
        );
        let (error_kind, error_message) = (record.error_kind, record.error_message.clone());
        self.metrics
            .attempt_duration
            .with_label_values(&[record.outcome.as_str()])
            .observe(duration.as_secs_f64());
        self.metrics.step_took(PathStep::ExecutorRequest, duration);
        // Kept in case what the destination answered cannot be stored: the attempt is then
        // recorded without it rather than sent again.
        let bare = record.without_response();
        let moved = match self.records.call((record, outcome.clone())).await {
            Err(CallError::Refused(error)) => {
                tracing::warn!(
                    execution = %job.execution_id,
                    error = format!("{error:#}"),
                    "the response could not be stored; recording the attempt without it"
                );
                let note = format!("the response could not be stored: {error:#}");
                let error_message = Some(match &bare.error_message {
                    Some(message) => format!("{message}; {note}"),
                    None => note,
                });
                let bare = AttemptRecord {
                    error_message,
                    ..bare
                };
                self.records.call((bare, outcome.clone())).await?
            }
            answer => answer?,
        };
        if disable_action {
            let reason = format!("endpoint answered 410 Gone on {}", now.to_rfc3339());
            self.store
                .disable_action(job.tenant_id, job.action_id, &reason)
                .await?;
        }
        if !moved {
            return Ok(());
        }
        match outcome {
            Outcome::RetryAt(due) => {
                self.metrics.retries_scheduled.inc();
                self.schedule_retry(job, due).await?;
            }
            Outcome::Succeeded => self
                .metrics
                .executions_completed
                .with_label_values(&["succeeded"])
                .inc(),
            Outcome::Failed => {
                let kind = error_kind.map(|k| k.as_str().to_owned());
                self.report_failed(job, kind, error_message, now).await?;
            }
        }
        Ok(())
    }

    /// Counts an execution (or a workflow run) that ended `failed` and announces it on
    /// `herald.failed`.
    pub(crate) async fn report_failed(
        &self,
        job: &ExecutionJob,
        error_kind: Option<String>,
        error: Option<String>,
        failed_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.metrics
            .executions_completed
            .with_label_values(&["failed"])
            .inc();
        let failed = ExecutionFailed {
            execution_id: job.execution_id,
            tenant_id: job.tenant_id,
            action_id: job.action_id,
            event_id: job.event.id.clone(),
            attempts: job.attempt,
            error_kind,
            error,
            failed_at,
        };
        self.publisher
            .publish(&Outgoing::message(FAILED_EXCHANGE, "", &failed))
            .await?;
        Ok(())
    }

    async fn cancel(&self, job: &ExecutionJob, reason: &str) -> anyhow::Result<()> {
        if self
            .store
            .cancel_execution(job.tenant_id, job.execution_id, reason)
            .await?
        {
            self.metrics
                .executions_completed
                .with_label_values(&["cancelled"])
                .inc();
        }
        Ok(())
    }

    /// Holds the attempt back until `until` without spending it: the execution waits as
    /// `retry_scheduled`, and the same attempt comes back through the scheduler.
    async fn hold(
        &self,
        job: &ExecutionJob,
        until: DateTime<Utc>,
        reason: &'static str,
    ) -> anyhow::Result<()> {
        let waiting = self
            .store
            .defer_attempt(
                job.tenant_id,
                job.execution_id,
                job.attempt as i32,
                until,
                &format!("held back: {}", reason.replace('_', " ")),
            )
            .await?;
        if !waiting {
            // The execution moved on meanwhile (finished, cancelled, or another copy of
            // this job is making the attempt).
            return Ok(());
        }
        self.metrics
            .attempts_held
            .with_label_values(&[reason])
            .inc();
        let tag = format!("held:{}", until.timestamp_millis());
        self.publish_delayed(job.clone(), Some(&tag), until).await
    }

    /// Hands the next attempt to the scheduler, to be released onto the retry lane at `due`.
    async fn schedule_retry(&self, job: &ExecutionJob, due: DateTime<Utc>) -> anyhow::Result<()> {
        let next = ExecutionJob {
            attempt: job.attempt + 1,
            ..job.clone()
        };
        self.publish_delayed(next, None, due).await
    }

    /// Hands `job` to the scheduler, to be released onto the retry lane at `due`.
    pub(crate) async fn publish_delayed(
        &self,
        job: ExecutionJob,
        tag: Option<&str>,
        due: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let delayed = DelayedJob::attempt(job, Lane::Retry, tag, due);
        self.publisher
            .publish(&Outgoing::message(
                DELAYED_EXCHANGE,
                DELAYED_ROUTING_KEY,
                &delayed,
            ))
            .await?;
        Ok(())
    }
}
