//! Recovery of stuck executions. An execution `processing` past its lease lost its executor
//! (died, or hung with its broker connection alive, so the broker never redelivers): the same
//! attempt is sent again under a new lease. An execution waiting far past its time with no job
//! for it at the scheduler lost its job (a purged queue, a dead-lettered message): the attempt
//! it waits for is sent. Re-sending is safe: an attempt is recorded once, and the receiver
//! sees the same `webhook-id`.

use std::time::Duration;

use herald_common::metrics::Metrics;
use herald_common::store::{Store, Stuck};

use herald_common::clock::Clock;

/// Executions re-sent per statement.
const BATCH: i64 = 500;

pub struct Recovery<C: Clock> {
    pub store: Store,
    pub metrics: Metrics,
    pub clock: C,
    /// The lease a re-sent attempt gets (the executors' `executor.lease_s`).
    pub lease: Duration,
    /// How long past its time an attempt may wait before it is deemed lost.
    pub overdue_after: Duration,
}

impl<C: Clock> Recovery<C> {
    /// One round: every stuck execution found is re-sent; returns how many.
    pub async fn recover_once(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for reason in [Stuck::LeaseExpired, Stuck::Overdue] {
            loop {
                let now = self.clock.now();
                let sent = self
                    .store
                    .recover_stuck(
                        reason,
                        now,
                        now + chrono::Duration::from_std(self.lease)?,
                        now - chrono::Duration::from_std(self.overdue_after)?,
                        BATCH,
                    )
                    .await?;
                if sent > 0 {
                    tracing::warn!(
                        executions = sent,
                        reason = reason.as_str(),
                        "re-sent stuck executions"
                    );
                    self.metrics
                        .executions_recovered
                        .with_label_values(&[reason.as_str()])
                        .inc_by(sent);
                }
                total += sent;
                if (sent as i64) < BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }
}
