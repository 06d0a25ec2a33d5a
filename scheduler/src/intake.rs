//! Accepting delayed jobs from the broker into PostgreSQL.

use std::sync::Arc;

use herald_common::broker::topology::SCHEDULER_QUEUE;
use herald_common::broker::{BatchHandler, Delivery, Publisher, dead_letter};
use herald_common::messages::{DelayedJob, Message, UNSTORABLE};
use herald_common::metrics::{Metrics, Stage};
use herald_common::store::{Store, WriteFailure, is_data_error, write_isolated};
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::Notify;

pub struct Intake {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    /// Wakes the release loop, so a short delay is not left waiting for the next poll.
    pub wake: Arc<Notify>,
}

impl BatchHandler for Intake {
    async fn handle(&self, batch: Vec<Delivery>) {
        let mut jobs = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        for delivery in batch {
            if delivery.redelivered {
                self.metrics
                    .redeliveries
                    .with_label_values(&[SCHEDULER_QUEUE])
                    .inc();
            }
            let kind = delivery
                .properties
                .kind()
                .as_ref()
                .map(|s| s.as_str().to_owned());
            match DelayedJob::decode(kind.as_deref(), &delivery.data) {
                Ok(job) => {
                    jobs.push(job);
                    accepted.push(delivery);
                }
                Err(error) => {
                    dead_letter(
                        &self.publisher,
                        &self.metrics,
                        &delivery,
                        SCHEDULER_QUEUE,
                        error.code(),
                        &error.to_string(),
                    )
                    .await;
                }
            }
        }
        // Out once stored and acknowledged; jobs returned to the broker are counted in again.
        let mut work = self
            .metrics
            .stage_enter(Stage::SchedulerIntake, jobs.len() as u64);
        // One statement while nothing is wrong; a job whose own data the database refuses is
        // parked alone and the others are stored without it.
        let outcomes = write_isolated(jobs.len(), is_data_error, |range| {
            let chunk = &jobs[range];
            let store = &self.store;
            async move {
                store.insert_delayed_jobs(chunk).await?;
                Ok(vec![(); chunk.len()])
            }
        })
        .await;
        let mut returned = Vec::new();
        for (delivery, outcome) in accepted.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                    work.done(1);
                }
                Err(WriteFailure::Refused(error)) => {
                    let reason = format!("the database refused the job: {error}");
                    dead_letter(
                        &self.publisher,
                        &self.metrics,
                        delivery,
                        SCHEDULER_QUEUE,
                        UNSTORABLE,
                        &reason,
                    )
                    .await;
                    work.done(1);
                }
                Err(failure) => returned.push((delivery, failure)),
            }
        }
        self.wake.notify_one();
        if let Some((_, failure)) = returned.first() {
            tracing::warn!(?failure, "could not store delayed jobs; returning them");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            for (delivery, _) in &returned {
                let _ = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await;
            }
        }
    }
}
