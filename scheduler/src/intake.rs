//! Accepting delayed jobs from the broker into PostgreSQL.

use std::sync::Arc;

use herald_common::broker::topology::SCHEDULER_QUEUE;
use herald_common::broker::{BatchHandler, Delivery, Publisher, dead_letter};
use herald_common::messages::{DelayedJob, Message};
use herald_common::metrics::{Metrics, Stage};
use herald_common::store::Store;
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
        let work = self
            .metrics
            .stage_enter(Stage::SchedulerIntake, jobs.len() as u64);
        match self.store.insert_delayed_jobs(&jobs).await {
            Ok(()) => {
                for delivery in &accepted {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
                work.done_all();
                self.wake.notify_one();
            }
            Err(error) => {
                tracing::warn!(%error, "could not store delayed jobs; returning them");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                for delivery in &accepted {
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
}
