//! Accepting delayed jobs from the broker into PostgreSQL.

use std::sync::Arc;

use herald_common::broker::topology::SCHEDULER_QUEUE;
use herald_common::broker::{BatchHandler, Delivery, Publisher, QueueContext};
use herald_common::messages::{DelayedJob, UNSTORABLE};
use herald_common::metrics::{Metrics, Stage};
use herald_common::store::{Store, WriteFailure, is_data_error, write_isolated};
use lapin::options::BasicAckOptions;
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
        let queue = QueueContext {
            queue: SCHEDULER_QUEUE,
            publisher: &self.publisher,
            metrics: &self.metrics,
        };
        let mut jobs = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        for delivery in batch {
            if let Some(job) = queue.receive_message::<DelayedJob>(&delivery).await {
                jobs.push(job);
                accepted.push(delivery);
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
                    queue.park(delivery, UNSTORABLE, &reason).await;
                    work.done(1);
                }
                Err(failure) => returned.push((delivery, failure)),
            }
        }
        self.wake.notify_one();
        if let Some((_, failure)) = returned.first() {
            let error = failure.to_string();
            let deliveries: Vec<&Delivery> = returned.iter().map(|(d, _)| *d).collect();
            queue.give_back(&deliveries, error).await;
        }
    }
}
