//! Carrying out retries by filter, one page per transaction, oldest request first. Replicas
//! share the work: each page locks its bulk retry, so two never take the same page.

use std::time::Duration;

use herald_common::metrics::Metrics;
use herald_common::store::Store;

use herald_common::clock::Clock;

pub struct BulkRetries<C: Clock> {
    pub store: Store,
    pub metrics: Metrics,
    pub clock: C,
    pub page: i64,
    /// Pause between pages, so a huge retry does not flood the executors at once.
    pub between_pages: Duration,
}

impl<C: Clock> BulkRetries<C> {
    /// Works through every running bulk retry; returns how many executions were reopened.
    pub async fn run_once(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        while let Some(step) = self
            .store
            .advance_bulk_retry(self.page, self.clock.now())
            .await?
        {
            self.metrics
                .executions_retried
                .with_label_values(&["bulk"])
                .inc_by(step.retried);
            total += step.retried;
            if step.finished {
                tracing::info!(bulk_retry = %step.id, "bulk retry done");
            }
            tokio::time::sleep(self.between_pages).await;
        }
        Ok(total)
    }
}
