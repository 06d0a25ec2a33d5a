//! The executor service: consume job batches, make each attempt, record it, and schedule the
//! next attempt through the scheduler when one is due.
//!
//! A job is acknowledged only after its attempt is recorded (and, for a retry, after the
//! delayed job is confirmed by the broker). A redelivered job finds the execution's state in
//! PostgreSQL and sends nothing for an execution that already ended.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use herald_common::action::{Handler, WebhookHandler};
use herald_common::broker::topology::{
    DELAYED_EXCHANGE, DELAYED_ROUTING_KEY, EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE,
    JOBS_EXCHANGE,
};
use herald_common::broker::{
    BatchHandler, ConsumerOptions, Delivery, Outgoing, Publisher, dead_letter, run_consumer,
};
use herald_common::config::{Config, ServiceName};
use herald_common::messages::{DelayedJob, ExecutionJob, JobBatch, Lane, Message};
use herald_common::metrics::Metrics;
use herald_common::net::Destinations;
use herald_common::service::{Base, Running};
use herald_common::signing::SigningKey;
use herald_common::status::{AttemptOutcome, ErrorKind};
use herald_common::store::{AttemptRecord, Claim, Outcome, Store};
use lapin::options::{BasicAckOptions, BasicNackOptions};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::deliver::{self, Delivered};
use crate::outcome::{Verdict, classify_error, classify_status};
use crate::{client, request, retry};

const STAGE: &str = "executor";

/// Starts the executor; it runs until `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let base = Base::start(ServiceName::Executor, config, shutdown.clone()).await?;
    let policy = Arc::new(
        Destinations::new(&base.config.executor.allow_private_destinations)
            .map_err(anyhow::Error::msg)?,
    );
    let http = client::build(
        policy.clone(),
        Duration::from_millis(base.config.executor.connect_timeout_ms),
    )
    .context("building the HTTP client")?;
    let executor = Arc::new(Executor {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        http,
        policy,
        slots: Semaphore::new(base.config.executor.concurrency),
        lease: Duration::from_secs(base.config.executor.lease_s),
        body_limit: base.config.executor.response_body_limit_bytes,
    });
    for queue in [EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE] {
        let options = ConsumerOptions {
            queue,
            prefetch: base.config.amqp.prefetch,
            // Every delivery runs as soon as it arrives; its jobs share the process's slots.
            batch_max: 1,
            linger: Duration::ZERO,
            max_batches_in_flight: usize::from(base.config.amqp.prefetch),
            grace: base.config.shutdown.grace(),
        };
        let lane = QueueHandler {
            executor: executor.clone(),
            queue,
        };
        base.tasks.spawn(run_consumer(
            base.consume_link.clone(),
            options,
            Arc::new(lane),
            shutdown.clone(),
        ));
    }
    Ok(base.into_running(None))
}

struct Executor {
    store: Store,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    http: reqwest::Client,
    policy: Arc<Destinations>,
    slots: Semaphore,
    lease: Duration,
    body_limit: usize,
}

struct QueueHandler {
    executor: Arc<Executor>,
    queue: &'static str,
}

impl BatchHandler for QueueHandler {
    async fn handle(&self, batch: Vec<Delivery>) {
        for delivery in batch {
            self.executor.handle_delivery(delivery, self.queue).await;
        }
    }
}

impl Executor {
    async fn handle_delivery(&self, delivery: Delivery, queue: &'static str) {
        if delivery.redelivered {
            self.metrics.redeliveries.with_label_values(&[queue]).inc();
        }
        let kind = delivery
            .properties
            .kind()
            .as_ref()
            .map(|s| s.as_str().to_owned());
        let batch = match JobBatch::decode(kind.as_deref(), &delivery.data) {
            Ok(batch) => batch,
            Err(error) => {
                dead_letter(
                    &self.publisher,
                    &self.metrics,
                    &delivery,
                    queue,
                    error.code(),
                    &error.to_string(),
                )
                .await;
                return;
            }
        };
        let results = join_all(batch.jobs.iter().map(|job| self.run_job(job))).await;
        if results.iter().all(Result::is_ok) {
            let _ = delivery.ack(BasicAckOptions::default()).await;
        } else {
            for error in results.iter().filter_map(|r| r.as_ref().err()) {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "job failed; it will be redelivered"
                );
            }
            // Jobs that did finish are idempotent on redelivery.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }

    /// Runs one job to a recorded result. An `Err` means infrastructure trouble (database or
    /// broker): the job must be retried as a whole.
    async fn run_job(&self, job: &ExecutionJob) -> anyhow::Result<()> {
        let _slot = self.slots.acquire().await?;
        let in_flight = self.metrics.stage_in_flight.with_label_values(&[STAGE]);
        in_flight.inc();
        let result = self.attempt(job).await;
        in_flight.dec();
        self.metrics.stage_done(STAGE, 1);
        result
    }

    async fn attempt(&self, job: &ExecutionJob) -> anyhow::Result<()> {
        let Some(action) = self.store.get_action(job.tenant_id, job.action_id).await? else {
            self.store
                .cancel_execution(job.tenant_id, job.execution_id, "action no longer exists")
                .await?;
            return Ok(());
        };
        if action.deleted_at.is_some() || !action.spec.enabled {
            let reason = if action.deleted_at.is_some() {
                "action deleted"
            } else {
                "action disabled"
            };
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
            return Ok(());
        }
        let attempt = job.attempt as i32;
        let lease_until = Utc::now() + chrono::Duration::from_std(self.lease)?;
        match self
            .store
            .claim_attempt(job.tenant_id, job.execution_id, attempt, lease_until)
            .await?
        {
            Claim::Claimed { .. } => {}
            Claim::RetryRecorded { next_attempt_at } => {
                // The retry was recorded but its hand-over may have been lost: hand it over
                // again (the scheduler ignores a job id it already holds).
                let due = next_attempt_at.unwrap_or_else(Utc::now);
                return self.schedule_retry(job, due).await;
            }
            Claim::Finished(_) | Claim::Stale | Claim::NotFound => return Ok(()),
        }
        let Handler::Webhook(hook) = &action.spec.handler;
        let delivered = self.deliver(job, hook).await;
        let now = Utc::now();
        let verdict = match (&delivered.status, &delivered.error) {
            (Some(status), _) => classify_status(*status, delivered.retry_after(), now),
            (None, Some((kind, _))) => classify_error(*kind),
            (None, None) => classify_error(ErrorKind::Request),
        };
        let (outcome, attempt_outcome, error_kind) = match &verdict {
            Verdict::Success => (Outcome::Succeeded, AttemptOutcome::Succeeded, None),
            Verdict::Retry { kind, retry_after } => {
                let random: f64 = rand::rng().random();
                match retry::next_delay(&action.spec.retry, job.attempt, random, *retry_after) {
                    Some(delay) => (
                        Outcome::RetryAt(now + chrono::Duration::from_std(delay)?),
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
        let record = AttemptRecord {
            execution_id: job.execution_id,
            tenant_id: job.tenant_id,
            attempt,
            started_at: now - chrono::Duration::from_std(delivered.duration)?,
            duration_ms: delivered.duration.as_millis().min(i32::MAX as u128) as i32,
            request_url: hook.url.clone(),
            response_status: delivered.status.map(i32::from),
            response_headers: (!delivered.headers.is_empty()).then(|| {
                serde_json::Value::Object(
                    delivered
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect(),
                )
            }),
            response_body: delivered.body.clone(),
            outcome: attempt_outcome,
            error_kind,
            error_message,
        };
        self.metrics
            .attempt_duration
            .with_label_values(&[attempt_outcome.as_str()])
            .observe(delivered.duration.as_secs_f64());
        self.store.record_attempt(&record, &outcome).await?;
        if verdict == Verdict::Gone {
            let reason = format!("endpoint answered 410 Gone on {}", now.to_rfc3339());
            self.store
                .disable_action(job.tenant_id, job.action_id, &reason)
                .await?;
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
            Outcome::Failed => self
                .metrics
                .executions_completed
                .with_label_values(&["failed"])
                .inc(),
        }
        Ok(())
    }

    async fn deliver(&self, job: &ExecutionJob, hook: &WebhookHandler) -> Delivered {
        let keys: Vec<SigningKey> = hook
            .secrets
            .iter()
            .filter_map(|s| SigningKey::from_secret(s).ok())
            .collect();
        let request = request::build(
            job.execution_id,
            &job.event,
            hook,
            &keys,
            Utc::now().timestamp(),
            None,
        );
        let timeout = Duration::from_millis(u64::from(hook.timeout_ms));
        deliver::send(&self.http, &self.policy, &request, timeout, self.body_limit).await
    }

    /// Hands the next attempt to the scheduler, to be released onto the retry lane at `due`.
    async fn schedule_retry(&self, job: &ExecutionJob, due: DateTime<Utc>) -> anyhow::Result<()> {
        let next = ExecutionJob {
            attempt: job.attempt + 1,
            ..job.clone()
        };
        let delayed = DelayedJob {
            id: format!("{}:{}", job.execution_id, next.attempt),
            due_at: due,
            exchange: JOBS_EXCHANGE.into(),
            routing_key: Lane::Retry.routing_key().into(),
            message_type: JobBatch::type_name(),
            body: JobBatch { jobs: vec![next] }.encode(),
            headers: Default::default(),
        };
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
