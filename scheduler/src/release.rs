//! Releasing due jobs: claim a batch (SKIP LOCKED, with a claim expiry), publish it with
//! confirms, and only then delete it. A replica that dies mid-batch leaves its claim to expire,
//! and another replica releases those jobs.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::{Outgoing, Publisher, string_headers};
use herald_common::metrics::Metrics;
use herald_common::store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub struct Releaser<C: Clock> {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub clock: C,
    pub replica: String,
    pub batch_size: i64,
    pub claim_ttl: Duration,
    pub poll_interval: Duration,
    pub wake: Arc<Notify>,
}

impl<C: Clock> Releaser<C> {
    /// Releases due jobs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let released = match self.release_once().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "releasing delayed jobs failed"
                    );
                    0
                }
            };
            if released as i64 >= self.batch_size {
                continue; // more are probably due
            }
            let pause = self.pause().await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Sleeps until the next job is due, at most one poll interval (other replicas and the
    /// intake of this one may add earlier jobs meanwhile).
    async fn pause(&self) -> Duration {
        match self.store.next_due_at().await {
            Ok(Some(due)) => (due - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.poll_interval),
            _ => self.poll_interval,
        }
    }

    /// Claims, publishes and deletes one batch; returns how many jobs were released.
    pub async fn release_once(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let claim_until = now + chrono::Duration::from_std(self.claim_ttl)?;
        let claimed = self
            .store
            .claim_due_jobs(now, self.batch_size, &self.replica, claim_until)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let messages: Vec<Outgoing> = claimed
            .iter()
            .map(|c| {
                let headers =
                    string_headers(c.job.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                Outgoing::raw(
                    &c.job.exchange,
                    &c.job.routing_key,
                    c.job.body.clone(),
                    &c.job.message_type,
                )
                .with_headers(headers)
            })
            .collect();
        self.publisher.publish_all(&messages).await?;
        let ids: Vec<String> = claimed.iter().map(|c| c.job.id.clone()).collect();
        self.store.delete_released_jobs(&ids, &self.replica).await?;
        let released_at = self.clock.now();
        for c in &claimed {
            let late = (released_at - c.job.due_at)
                .to_std()
                .unwrap_or(Duration::ZERO);
            self.metrics
                .delayed_release_lateness
                .observe(late.as_secs_f64());
        }
        self.metrics
            .delayed_jobs_released
            .inc_by(claimed.len() as u64);
        self.metrics
            .stage_done("scheduler_release", claimed.len() as u64);
        Ok(claimed.len())
    }
}
