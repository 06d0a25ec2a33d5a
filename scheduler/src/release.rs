//! Releasing due jobs: take a batch (deleted in a transaction that keeps the rows locked,
//! `SKIP LOCKED` for everyone else), publish it with confirms, and only then commit. A replica
//! that dies or hangs mid-batch never commits, so its jobs come back for another release.
//! Several release loops run per replica: while one waits for the broker's confirms, another
//! takes the next batch.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::{Outgoing, Publisher, string_headers};
use herald_common::metrics::{Metrics, Stage};
use herald_common::store::Store;
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind, TRACEPARENT};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use herald_common::clock::Clock;

/// Shortest pause after a round that released nothing: jobs due now but held by another
/// release loop are not worth asking for again at once.
const IDLE_PAUSE: Duration = Duration::from_millis(10);

pub struct Releaser<C: Clock> {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub clock: C,
    pub batch_size: i64,
    /// Longest a batch may stay taken without being committed.
    pub hold_for: Duration,
    pub poll_interval: Duration,
    pub wake: Arc<Notify>,
}

impl<C: Clock> Releaser<C> {
    /// Releases due jobs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
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
            let pause = if released == 0 {
                self.pause().await.max(IDLE_PAUSE)
            } else {
                self.pause().await
            };
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

    /// Takes, publishes and commits one batch; returns how many jobs were released.
    pub async fn release_once(&self) -> anyhow::Result<usize> {
        let mut batch = self
            .store
            .take_due_jobs(self.clock.now(), self.batch_size, self.hold_for)
            .await?;
        if batch.jobs.is_empty() {
            return Ok(0);
        }
        // Out once confirmed and committed; otherwise the jobs are taken in again later.
        let work = self
            .metrics
            .stage_enter(Stage::SchedulerRelease, batch.jobs.len() as u64);
        let mut due = Vec::with_capacity(batch.jobs.len());
        let mut spans = Vec::new();
        // The bodies move into the messages: a batch is held in memory once.
        let messages: Vec<Outgoing> = std::mem::take(&mut batch.jobs)
            .into_iter()
            .map(|mut job| {
                due.push(job.due_at);
                // A traced job's release is a span of its trace, and the released message
                // names it as the next hop's parent.
                if let Some(parent) = job.headers.get(TRACEPARENT) {
                    let span = HeraldSpan::start(
                        "herald.release",
                        SpanKind::Internal,
                        Some(parent),
                        vec![KeyValue::new("herald.job_id", job.id.clone())],
                    );
                    job.headers
                        .insert(TRACEPARENT.to_owned(), span.traceparent());
                    spans.push(span);
                }
                let headers =
                    string_headers(job.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                Outgoing::raw(&job.exchange, &job.routing_key, job.body, &job.message_type)
                    .with_headers(headers)
            })
            .collect();
        // On an error the batch is dropped uncommitted and its jobs stay for the next round.
        self.publisher.publish_all(&messages).await?;
        drop(messages);
        let released_at = self.clock.now();
        let lateness: Vec<f64> = due
            .iter()
            .map(|due_at| {
                (released_at - *due_at)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
            })
            .collect();
        // A failed commit after the confirms releases these jobs again later: at least once.
        batch.commit().await?;
        for late in &lateness {
            self.metrics.delayed_release_lateness.observe(*late);
        }
        self.metrics
            .delayed_jobs_released
            .inc_by(lateness.len() as u64);
        work.done_all();
        Ok(lateness.len())
    }
}
