//! Workflow runs, job by job. A run's first job (from the matcher, `step: None`) makes its step
//! rows and starts the steps without dependencies; each step's job makes one attempt, records
//! it and moves the run on in the same transaction (`Store::advance_runs`, many runs per
//! transaction through a batcher), then starts what that started: in this process, within the
//! same delivery, or through the scheduler for a delay or a retry. A delivery is acknowledged
//! only after everything it started is recorded or handed over, so a process that dies in
//! between gets it again: it finds its step ended (never running it again) and starts the same
//! steps, each under its own stable job id.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use herald_common::circuit::Admission;
use herald_common::messages::ExecutionJob;
use herald_common::status::ErrorKind;
use herald_common::store::{
    Advance, Advanced, ClaimStep, Outcome, StepAttempt, StepClaim, StepEnd, StepRecord,
};
use herald_common::workflow::{ON_FAILURE, RunEnd};
use herald_handlers::template::Steps;
use herald_handlers::workflow::{
    StepRun, StepSpec, WorkflowSpec, condition_holds, output_of, set_values, wait_until,
};
use herald_handlers::{Action, Context, Handler, Performed};
use rand::Rng;

use crate::decide::{Attempt, Decision, decide};
use crate::job::Executor;

/// When a step held back by its destination's open circuit comes back, at the latest.
const HOLD: Duration = Duration::from_secs(1);

impl Executor {
    /// One job of a workflow action: the run itself (`step: None`) or one step's attempt.
    pub(crate) async fn run_workflow(
        &self,
        job: &ExecutionJob,
        action: &Action,
        spec: &WorkflowSpec,
    ) -> anyhow::Result<()> {
        let Some(step) = job.step.as_deref() else {
            // A run's job seen again (redelivered, or re-sent by recovery) hands on again
            // what was queued and never attempted: its first hand-over may have been lost.
            let advanced = self.move_run(job, spec, None).await?;
            return self.follow(job, spec, advanced, true).await;
        };
        let claim = self
            .step_claims
            .call(ClaimStep {
                tenant_id: job.tenant_id,
                execution_id: job.execution_id,
                step: step.to_owned(),
                attempt: job.attempt as i32,
            })
            .await?;
        match claim {
            StepClaim::Stale => Ok(()),
            StepClaim::Ended => {
                let advanced = self.move_run(job, spec, None).await?;
                self.follow(job, spec, advanced, true).await
            }
            StepClaim::RetryRecorded { next_attempt_at } => {
                self.hand_on_later(step_job(job, step, job.attempt + 1), None, next_attempt_at)
                    .await
            }
            StepClaim::Run { outputs, failed } => {
                let steps = Steps {
                    outputs,
                    error: failed.map(
                        |(step, message)| serde_json::json!({"step": step, "message": message}),
                    ),
                };
                self.attempt_step(job, action, spec, step, &steps).await
            }
        }
    }

    async fn move_run(
        &self,
        job: &ExecutionJob,
        spec: &WorkflowSpec,
        ended: Option<&StepRecord>,
    ) -> anyhow::Result<Advanced> {
        Ok(self
            .advances
            .call(Advance {
                tenant_id: job.tenant_id,
                execution_id: job.execution_id,
                graph: spec.graph(),
                ended: ended.cloned(),
            })
            .await?)
    }

    /// Makes the attempt of `step` (or skips it, when its `if` does not hold), records it and
    /// moves the run on.
    async fn attempt_step(
        &self,
        job: &ExecutionJob,
        action: &Action,
        spec: &WorkflowSpec,
        step: &str,
        steps: &Steps,
    ) -> anyhow::Result<()> {
        let step_spec = spec.step(step);
        let handler = match step_spec.map(|s| &s.run) {
            Some(StepRun::Handler(handler)) => Some(handler.as_ref()),
            Some(_) => None,
            None if step == ON_FAILURE => spec.on_failure.as_deref(),
            // A step the action no longer has (it was edited mid-run).
            None => {
                return self
                    .record_step(
                        job,
                        spec,
                        step,
                        fail_now("the workflow no longer has this step"),
                    )
                    .await;
            }
        };
        let secrets = self
            .secrets
            .get(job.tenant_id, &action.spec.handler.secret_names())
            .await?;
        let context = Context {
            job,
            now: self.clock.now(),
            action_name: &action.spec.matching.name,
            secrets: &secrets,
            outbound: &self.outbound,
            publisher: Some(&self.publisher),
            steps: Some(steps),
        };
        let render = context.render_context();
        if let Some(step_spec) = step_spec {
            match condition_holds(step_spec, &render) {
                Ok(true) => {}
                Ok(false) => {
                    let record = StepRecord {
                        step: step.to_owned(),
                        attempt: job.attempt as i32,
                        end: StepEnd::Skipped,
                        attempt_row: None,
                    };
                    return self.record(job, spec, record, None).await;
                }
                Err(error) => {
                    return self
                        .record_step(job, spec, step, fail_now(&error.to_string()))
                        .await;
                }
            }
        }
        if let Some(step_spec) = step_spec {
            match wait_until(step_spec, &render) {
                Ok(Some(due)) if due > self.clock.now() => {
                    // Not yet: the same attempt comes back at `due`, through the scheduler.
                    let tag = format!("at:{}", due.timestamp_millis());
                    return self.hand_on_later(job.clone(), Some(&tag), due).await;
                }
                Ok(_) => {}
                Err(error) => {
                    return self
                        .record_step(job, spec, step, fail_now(&error.to_string()))
                        .await;
                }
            }
        }
        let Some(handler) = handler else {
            // A `set` step, or a wait whose time has come.
            let end = match step_spec.map(|s| &s.run) {
                Some(StepRun::Set(values)) => {
                    match set_values(step_spec.expect("a set step"), values, &render) {
                        Ok(output) => StepEnd::Succeeded { output },
                        Err(error) => StepEnd::Failed {
                            error: error.to_string(),
                        },
                    }
                }
                _ => StepEnd::Succeeded {
                    output: serde_json::Value::Null,
                },
            };
            return self.record_step(job, spec, step, end).await;
        };
        let endpoint = handler.destination().map(str::to_owned);
        if let Some(endpoint) = &endpoint
            && let Admission::HoldUntil(until) =
                self.circuits
                    .admit(job.tenant_id, endpoint, self.clock.now())
        {
            let tag = format!("held:{}", until.timestamp_millis());
            return self
                .hand_on_later(job.clone(), Some(&tag), until.max(self.clock.now() + HOLD))
                .await;
        }
        let started = self.clock.now();
        let performed = {
            let _slot = self.slots.acquire().await?;
            self.perform_step(handler, step_spec, &context).await
        };
        if let Some(endpoint) = &endpoint {
            self.report_to_circuit(job, endpoint, &performed, false)
                .await;
        }
        let output = output_of(handler, &performed);
        let policy = step_spec
            .map(|s| s.retry.clone())
            .unwrap_or_else(one_attempt);
        let Decision {
            record, outcome, ..
        } = decide(
            Attempt {
                execution_id: job.execution_id,
                tenant_id: job.tenant_id,
                number: job.attempt,
                started_at: started,
            },
            performed,
            &policy,
            self.clock.now(),
            rand::rng().random(),
        );
        self.metrics
            .attempt_duration
            .with_label_values(&[record.outcome.as_str()])
            .observe(f64::from(record.duration_ms) / 1000.0);
        let error = record
            .error_message
            .clone()
            .unwrap_or_else(|| "the attempt failed".to_owned());
        let end = match outcome {
            Outcome::Succeeded => StepEnd::Succeeded { output },
            Outcome::RetryAt(at) => StepEnd::RetryAt { at, error },
            Outcome::Failed => StepEnd::Failed { error },
        };
        let attempt_row = StepAttempt {
            handler_type: handler_kind(handler),
            started_at: record.started_at,
            duration_ms: record.duration_ms,
            target: record.request_url,
            response_status: record.response_status,
            outcome: record.outcome,
            error_kind: record.error_kind,
            error_message: record.error_message,
        };
        let step_record = StepRecord {
            step: step.to_owned(),
            attempt: job.attempt as i32,
            end,
            attempt_row: Some(attempt_row),
        };
        self.record(job, spec, step_record, Some(handler_kind(handler)))
            .await
    }

    /// The attempt of a step's handler, within the step's own timeout when it has one.
    async fn perform_step(
        &self,
        handler: &Handler,
        step: Option<&StepSpec>,
        context: &Context<'_>,
    ) -> Performed {
        let Some(limit) = step.and_then(|s| s.timeout_ms) else {
            return handler.execute(context).await;
        };
        let limit = Duration::from_millis(u64::from(limit));
        match tokio::time::timeout(limit, handler.execute(context)).await {
            Ok(performed) => performed,
            Err(_) => Performed::failed(
                handler
                    .destination()
                    .unwrap_or(handler_kind(handler))
                    .to_owned(),
                ErrorKind::Timeout,
                format!("the step's timeout of {} ms passed", limit.as_millis()),
                limit,
            ),
        }
    }

    async fn record_step(
        &self,
        job: &ExecutionJob,
        spec: &WorkflowSpec,
        step: &str,
        end: StepEnd,
    ) -> anyhow::Result<()> {
        let record = StepRecord {
            step: step.to_owned(),
            attempt: job.attempt as i32,
            end,
            attempt_row: None,
        };
        self.record(job, spec, record, None).await
    }

    /// Records a step's end, moves the run on, and hands on what follows.
    async fn record(
        &self,
        job: &ExecutionJob,
        spec: &WorkflowSpec,
        record: StepRecord,
        kind: Option<&'static str>,
    ) -> anyhow::Result<()> {
        let advanced = self.move_run(job, spec, Some(&record)).await?;
        if advanced.recorded {
            let status = match &record.end {
                StepEnd::Succeeded { .. } => "succeeded",
                StepEnd::RetryAt { .. } => "retrying",
                StepEnd::Failed { .. } => "failed",
                StepEnd::Skipped => "skipped",
            };
            self.metrics
                .workflow_steps
                .with_label_values(&[kind.unwrap_or("none"), status])
                .inc();
        }
        if let StepEnd::RetryAt { at, .. } = &record.end
            && advanced.recorded
        {
            self.metrics.retries_scheduled.inc();
            let next = step_job(job, &record.step, job.attempt + 1);
            self.hand_on_later(next, None, *at).await?;
        }
        self.follow(job, spec, advanced, false).await
    }

    /// Hands on the steps a move started (and, for a job seen again, those queued before),
    /// then reports the run's end.
    async fn follow(
        &self,
        job: &ExecutionJob,
        spec: &WorkflowSpec,
        advanced: Advanced,
        again: bool,
    ) -> anyhow::Result<()> {
        if advanced.closed {
            return Ok(());
        }
        let mut start = advanced.start;
        if again {
            for queued in advanced.queued_before {
                if !start.iter().any(|(step, _)| *step == queued.0) {
                    start.push(queued);
                }
            }
        }
        let mut now_jobs = Vec::new();
        for (step, attempt) in &start {
            let next = step_job(job, step, *attempt);
            match spec.step(step).and_then(|s| s.delay_s).filter(|d| *d > 0) {
                Some(delay) => {
                    let due = self.clock.now() + chrono::Duration::seconds(i64::from(delay));
                    self.hand_on_later(next, None, due).await?;
                }
                None => now_jobs.push(next),
            }
        }
        // Steps that may start now run here, within this job: its delivery stays
        // unacknowledged until they are recorded, so a crash loses none of them (a copy of
        // this job finds its step ended and starts them again). It saves each step a broker
        // hop and the CPU of one, which on a 2-core machine was a third of a run's cost.
        let inline = now_jobs.iter().map(|next| self.run_step_job(next));
        for result in join_all(inline).await {
            result?;
        }
        match advanced.end {
            None => {}
            Some(RunEnd::Succeeded) => self
                .metrics
                .executions_completed
                .with_label_values(&["succeeded"])
                .inc(),
            Some(RunEnd::Failed { step }) => {
                let error = Some(format!("step {step:?} failed"));
                self.report_failed(job, None, error, self.clock.now())
                    .await?;
            }
        }
        Ok(())
    }

    /// A step's job run within the job that started it (boxed: a run's jobs call each other).
    fn run_step_job<'a>(
        &'a self,
        job: &'a ExecutionJob,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>> {
        Box::pin(self.run_job(job))
    }

    /// Hands `job` to the scheduler, to come back at `due`.
    async fn hand_on_later(
        &self,
        job: ExecutionJob,
        tag: Option<&str>,
        due: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.publish_delayed(job, tag, due).await
    }
}

/// The job of attempt `attempt` of `step` in the run `job` belongs to.
fn step_job(job: &ExecutionJob, step: &str, attempt: u32) -> ExecutionJob {
    ExecutionJob {
        attempt,
        step: Some(step.to_owned()),
        ..job.clone()
    }
}

fn fail_now(message: &str) -> StepEnd {
    StepEnd::Failed {
        error: message.to_owned(),
    }
}

/// `on_failure` gets one attempt.
fn one_attempt() -> herald_common::action::RetryPolicy {
    herald_common::action::RetryPolicy::Delays {
        max_attempts: 1,
        delays_s: Vec::new(),
    }
}

fn handler_kind(handler: &Handler) -> &'static str {
    use herald_common::action::HandlerSpec;
    handler.kind()
}
