//! The executor service: consume job batches from both lanes, run each job (see `job`), and
//! acknowledge a delivery once every job in it is recorded.
//!
//! A job is acknowledged only after its attempt is recorded (and, for a retry or a hold, after
//! the delayed job is confirmed by the broker). A redelivered job finds the execution's state
//! in PostgreSQL and sends nothing for an execution that already ended.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::join_all;
use herald_common::broker::topology::{EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE};
use herald_common::broker::{
    BatchHandler, ConsumerOptions, Delivery, QueueContext, header_str, run_consumer,
};
use herald_common::config::{Config, ServiceName};
use herald_common::messages::JobBatch;
use herald_common::service::{Base, Running};
use herald_common::trace::TRACEPARENT;
use herald_handlers::Outbound;
use lapin::options::BasicAckOptions;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::actions::ActionCache;
use crate::batcher::Batcher;
use crate::circuits::Circuits;
use crate::gates::{ActionLimits, DestinationGates};
use crate::job::Executor;
use crate::secrets::SecretCache;

/// Most checks or records sent in one statement.
const DB_BATCH_MAX: usize = 256;

/// Starts the executor; it runs until `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let base = Base::start(ServiceName::Executor, config, shutdown.clone()).await?;
    let settings = &base.config.executor;
    let outbound = Outbound::from_config(settings).context("building the HTTP client")?;
    let circuits = Arc::new(Circuits::new(
        base.store.clone(),
        base.clock.clone(),
        settings.circuit_policy(),
        base.metrics.clone(),
    ));
    base.tasks.spawn(circuits.clone().run(
        Duration::from_millis(settings.circuit_sync_ms),
        shutdown.clone(),
    ));
    let store = base.store.clone();
    let checks = Batcher::spawn(DB_BATCH_MAX, move |requests| {
        let store = store.clone();
        Box::pin(async move { Ok(store.check_attempts(requests).await?) })
    });
    let store = base.store.clone();
    let records = Batcher::spawn(DB_BATCH_MAX, move |records| {
        let store = store.clone();
        Box::pin(async move { Ok(store.record_attempts(records).await?) })
    });
    let store = base.store.clone();
    let step_claims = Batcher::spawn(DB_BATCH_MAX, move |requests| {
        let store = store.clone();
        Box::pin(async move { Ok(store.claim_steps(requests).await?) })
    });
    let store = base.store.clone();
    let advances = Batcher::spawn(DB_BATCH_MAX, move |requests| {
        let store = store.clone();
        Box::pin(async move { Ok(store.advance_runs(requests).await?) })
    });
    let executor = Arc::new(Executor {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        outbound,
        slots: Semaphore::new(settings.concurrency),
        lease: Duration::from_secs(settings.lease_s),
        actions: ActionCache::new(base.store.clone()),
        secrets: SecretCache::new(base.store.clone()),
        circuits,
        gates: DestinationGates::new(
            settings.per_destination_concurrency,
            settings.per_destination_queue,
            Duration::from_millis(settings.per_destination_wait_ms),
            base.metrics.clone(),
        ),
        limits: ActionLimits::new(base.store.clone(), base.clock.clone()),
        clock: base.clock.clone(),
        checks,
        records,
        step_claims,
        advances,
    });
    // First attempts and retries have lanes of their own, so a backlog of retries never
    // delays fresh events.
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

struct QueueHandler {
    executor: Arc<Executor>,
    queue: &'static str,
}

impl BatchHandler for QueueHandler {
    async fn handle(&self, batch: Vec<Delivery>) {
        for delivery in batch {
            self.handle_delivery(delivery).await;
        }
    }
}

impl QueueHandler {
    async fn handle_delivery(&self, delivery: Delivery) {
        let executor = &self.executor;
        let queue = QueueContext {
            queue: self.queue,
            publisher: &executor.publisher,
            metrics: &executor.metrics,
        };
        let Some(mut batch) = queue.receive_message::<JobBatch>(&delivery).await else {
            return;
        };
        // A message of one job may carry its trace in the AMQP header (a release by the
        // scheduler sets it to its own span): that is the job's parent then.
        if let ([job], Some(parent)) = (&mut batch.jobs[..], header_str(&delivery, TRACEPARENT)) {
            job.event.trace = Some(parent.to_owned());
        }
        let results = join_all(batch.jobs.iter().map(|job| executor.run_job(job))).await;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| format!("{e:#}")))
            .collect();
        if failed.is_empty() {
            let _ = delivery.ack(BasicAckOptions::default()).await;
        } else {
            // Jobs that did finish are idempotent on redelivery.
            let error = format!(
                "{} of {} jobs failed: {}",
                failed.len(),
                results.len(),
                failed.join("; ")
            );
            queue.give_back(&[&delivery], error).await;
        }
    }
}
