//! The work waiting in Herald's own queues, sampled: what admission control bounds.
//!
//! Past the rate a machine can deliver, intake that goes on at full speed takes the CPU and the
//! database from delivery: the queues grow without end and deliveries slow down (seen at 10k
//! events/s on a slow disk: 9.7k/s accepted, 1.5k/s delivered, the queue 48k deep). So the doors
//! look at the backlog ahead of delivery: ingest answers new events with 503 `overloaded` and
//! `Retry-After` while it is above `ingest.max_backlog`, and the matcher takes no new batch while
//! the executor's queues hold more than `matcher.max_backlog`. Intake then slows to delivery's
//! pace, and the lag stays bounded by those numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::Link;
use crate::metrics::Metrics;

/// How often the backlog is sampled: often enough that at 10k events/s intake overshoots a
/// bound by about a thousand messages, rarely enough to cost nothing at rest.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Longest a sample may take before the backlog reads 0 (the broker is away or stalled).
const ASK_WITHIN: Duration = Duration::from_secs(1);

/// Messages ready in queue `name`, by a passive declare (which changes nothing).
pub async fn ready_messages(channel: &Channel, name: &str) -> lapin::Result<u32> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await?;
    Ok(queue.message_count())
}

/// The sum of the ready messages of some queues, as last sampled. Cheap to clone and read.
#[derive(Clone, Default)]
pub struct Backlog {
    depth: Arc<AtomicU64>,
}

impl Backlog {
    /// A backlog and the task (to spawn) that samples `queues` into it every [`SAMPLE_EVERY`]
    /// until `shutdown`, and into `herald_admission_backlog_messages`. While the broker cannot
    /// be asked, the backlog reads 0: admission fails open, since events stored meanwhile wait
    /// in the outbox, not in a queue.
    pub fn watch(
        link: Arc<Link>,
        queues: &'static [&'static str],
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let backlog = Self::default();
        let depth = backlog.depth.clone();
        let task = async move {
            let mut channel: Option<Channel> = None;
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                // A broker that is away is waited for by the link: not here.
                let sampled = tokio::time::timeout(ASK_WITHIN, sample(&link, &mut channel, queues))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ASK_WITHIN:?}")));
                let value = sampled.unwrap_or_else(|error| {
                    tracing::debug!(%error, "the backlog could not be sampled");
                    channel = None;
                    0
                });
                depth.store(value, Ordering::Relaxed);
                metrics
                    .admission_backlog
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        };
        (backlog, task)
    }

    /// A backlog fixed at `depth`, for tests of what reads it.
    pub fn fixed(depth: u64) -> Self {
        Self {
            depth: Arc::new(AtomicU64::new(depth)),
        }
    }

    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether the backlog is past `limit`; a limit of 0 is no limit.
    pub fn over(&self, limit: u64) -> bool {
        limit > 0 && self.depth() > limit
    }

    /// Returns once the backlog is at most `limit` (at once for a limit of 0), or `shutdown`.
    pub async fn wait_within(&self, limit: u64, shutdown: &CancellationToken) {
        while self.over(limit) && !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
        }
    }
}

async fn sample(
    link: &Link,
    channel: &mut Option<Channel>,
    queues: &[&str],
) -> anyhow::Result<u64> {
    let open = match channel.take() {
        Some(open) if open.status().connected() => open,
        _ => link.connection().await?.create_channel().await?,
    };
    let mut sum = 0u64;
    for name in queues {
        sum += u64::from(ready_messages(&open, name).await?);
    }
    *channel = Some(open);
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_of_zero_never_holds() {
        let cases = [
            (0, 0, false),
            (0, 1_000_000, false),
            (10, 10, false),
            (10, 11, true),
        ];
        for (limit, depth, over) in cases {
            assert_eq!(Backlog::fixed(depth).over(limit), over, "{limit} {depth}");
        }
    }

    #[tokio::test]
    async fn waiting_ends_at_shutdown() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        Backlog::fixed(100).wait_within(10, &shutdown).await;
        assert!(shutdown.is_cancelled());
    }
}
