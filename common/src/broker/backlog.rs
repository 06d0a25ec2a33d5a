//! The work waiting in Herald's own queues, sampled: what admission control bounds.
//!
//! Past the rate a machine can deliver, intake that goes on at full speed takes the CPU and the
//! database from delivery: the queues grow without end and deliveries slow down (seen at 10k
//! events/s on a slow disk: 9.7k/s accepted, 1.5k/s delivered, the queue 48k deep). So the doors
//! look at the backlog ahead of delivery: ingest answers new events with 503 `overloaded` and
//! `Retry-After` while it is above `ingest.max_backlog`, and the matcher takes no new batch while
//! the executor's queues hold more than `matcher.max_backlog`. Intake then slows to delivery's
//! pace, and the lag stays bounded by those numbers.
//!
//! The limits are in items (events, jobs), while the broker tells messages, and a message
//! carries a batch: one event at rest, a hundred under load with `POST /v1/events/batch`. So
//! the backlog is read as ready messages × the mean items per message that this process
//! publishes (a moving average), which is what its consumers will find in them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::{Link, close_channel};
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

/// The sum of the ready messages of some queues, as last sampled, and the mean items per
/// message this process publishes. Cheap to clone and read.
#[derive(Clone)]
pub struct Backlog {
    depth: Arc<AtomicU64>,
    /// Mean items per published message, in thousandths.
    per_message_milli: Arc<AtomicU64>,
}

impl Default for Backlog {
    fn default() -> Self {
        Self {
            depth: Arc::default(),
            per_message_milli: Arc::new(AtomicU64::new(1000)),
        }
    }
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
                    _ = shutdown.cancelled() => break,
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
            // Closed here, before the links close the connection under it.
            if let Some(open) = channel {
                close_channel(&open, "backlog sampled").await;
            }
        };
        (backlog, task)
    }

    /// A backlog fixed at `depth` messages, for tests of what reads it.
    pub fn fixed(depth: u64) -> Self {
        Self {
            depth: Arc::new(AtomicU64::new(depth)),
            ..Self::default()
        }
    }

    /// This backlog's depth, read with the sizes `publishing` notes.
    pub fn sized_by(self, publishing: &Backlog) -> Self {
        Self {
            depth: self.depth,
            per_message_milli: publishing.per_message_milli.clone(),
        }
    }

    /// Notes a published message of `items`: the mean moves an eighth of the way to it.
    pub fn note_published(&self, items: usize) {
        let items = (items as u64).max(1).saturating_mul(1000);
        let mean = self.per_message_milli.load(Ordering::Relaxed);
        // Racing writers lose an update now and then: the mean stays a mean.
        let next = (mean * 7 + items) / 8;
        self.per_message_milli.store(next, Ordering::Relaxed);
    }

    /// The items waiting, estimated: ready messages × mean items per message.
    pub fn items(&self) -> u64 {
        let milli = self.per_message_milli.load(Ordering::Relaxed);
        self.depth.load(Ordering::Relaxed).saturating_mul(milli) / 1000
    }

    /// Whether the items waiting are past `limit`; a limit of 0 is no limit.
    pub fn over(&self, limit: u64) -> bool {
        limit > 0 && self.items() > limit
    }

    /// Whether a door refuses the next request: always past `limit`, never below half of it,
    /// and in between at random, a share growing with the backlog. Refusing all or nothing
    /// made intake come in bursts (the backlog is seen late: it misses what is committed and
    /// on its way, and what consumers hold unacknowledged); refusing early and gradually, as
    /// RED does for a router's queue, lets intake settle at delivery's pace.
    pub fn refuses(&self, limit: u64) -> bool {
        let share = refusal_share(self.items(), limit);
        share >= 1.0 || (share > 0.0 && rand::random::<f64>() < share)
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

/// The share of requests refused with `items` waiting against `limit` (0: no limit): 0 up to
/// half the limit, rising linearly towards 1 up to the limit, and 1 past it (so that "past
/// the limit, refused" holds exactly).
fn refusal_share(items: u64, limit: u64) -> f64 {
    let from = limit / 2;
    if limit == 0 || items <= from {
        0.0
    } else if items > limit {
        1.0
    } else {
        (items - from) as f64 / (limit + 1 - from) as f64
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

    #[test]
    fn refusals_grow_from_half_the_limit_to_all_past_it() {
        // (items, limit, share refused)
        let cases = [
            (5, 0, 0.0),
            (1_000_000, 0, 0.0),
            (0, 10, 0.0),
            (5, 10, 0.0),
            (6, 10, 1.0 / 6.0),
            (10, 10, 5.0 / 6.0),
            (11, 10, 1.0),
            (7_500, 10_000, 2_500.0 / 5_001.0),
            (4, 3, 1.0),
            (3, 3, 2.0 / 3.0),
            (2, 3, 1.0 / 3.0),
        ];
        for (items, limit, share) in cases {
            let got = refusal_share(items, limit);
            assert!((got - share).abs() < 1e-9, "{items} {limit}: {got}");
        }
        assert!(Backlog::fixed(11).refuses(10));
        assert!(!Backlog::fixed(5).refuses(10));
        assert!(!Backlog::fixed(1_000_000).refuses(0));
    }

    #[test]
    fn items_are_messages_times_the_mean_batch() {
        // (messages published of this size, ready messages, items estimated)
        let cases = [(0, 50, 50), (100, 50, 5_000), (1, 50, 50)];
        for (size, depth, items) in cases {
            let published = Backlog::default();
            for _ in 0..200 {
                if size > 0 {
                    published.note_published(size);
                }
            }
            let read = Backlog::fixed(depth).sized_by(&published);
            let estimated = read.items();
            assert!(
                estimated.abs_diff(items) <= items / 100,
                "{size} {depth}: {estimated}"
            );
        }
        let read = Backlog::fixed(50).sized_by(&Backlog::default());
        assert!(!read.over(50) && read.over(49));
    }
}
