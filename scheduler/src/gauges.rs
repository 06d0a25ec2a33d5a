//! What operators watch that no single request sees: the delayed-job backlog (how many jobs
//! are held and how overdue the earliest is) and the depth of every Herald queue (consumer
//! lag), sampled every few seconds into gauges. Every scheduler replica samples; the values
//! are the same, so dashboards take the `max`.

use std::sync::Arc;

use herald_common::broker::backlog::ready_messages;
use herald_common::broker::topology::{
    DEAD_QUEUE, EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE, FAILED_QUEUE, MATCHER_QUEUE,
    SCHEDULER_QUEUE,
};
use herald_common::broker::{Publisher, close_channel};
use herald_common::metrics::Metrics;
use herald_common::store::Store;

use herald_common::clock::Clock;

/// The queues whose depth is reported.
const QUEUES: [&str; 6] = [
    MATCHER_QUEUE,
    EXECUTOR_FIRST_QUEUE,
    EXECUTOR_RETRY_QUEUE,
    SCHEDULER_QUEUE,
    DEAD_QUEUE,
    FAILED_QUEUE,
];

/// Jobs counted at most, so that a huge backlog costs a bounded scan.
const COUNT_CAP: i64 = 1_000_000;

pub struct Gauges<C: Clock> {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub clock: C,
}

impl<C: Clock> Gauges<C> {
    pub async fn sample_once(&self) -> anyhow::Result<()> {
        let (held, overdue) = self
            .store
            .delayed_backlog(self.clock.now(), COUNT_CAP)
            .await?;
        self.metrics.delayed_jobs.set(held);
        self.metrics.delayed_jobs_overdue_oldest.set(overdue);
        self.sample_queues().await
    }

    async fn sample_queues(&self) -> anyhow::Result<()> {
        let connection = self.publisher.link().connection().await?;
        let channel = connection.create_channel().await?;
        for name in QUEUES {
            let ready = ready_messages(&channel, name).await?;
            self.metrics
                .queue_depth
                .with_label_values(&[name])
                .set(i64::from(ready));
        }
        close_channel(&channel, "sampled").await;
        Ok(())
    }
}
