//! A consumer that survives broker restarts and hands deliveries to a handler in batches.
//!
//! Group commit: deliveries that have arrived go as one batch as soon as one of the
//! `max_batches_in_flight` slots is free (and the first has waited `linger`, if one is set),
//! or when the batch is full; while every slot is busy, the next batch grows. So a delivery
//! alone waits for no companion, and batches are as large as the load makes them. Each batch
//! runs as its own task; the handler acknowledges what it finishes. At
//! shutdown the consumer is cancelled first, in-flight batches get the grace period, and
//! anything still unacknowledged returns to the queue when the channel closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Delivery, Link};

/// Does the work for a batch of deliveries and acknowledges (or rejects) each of them.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle(&self, batch: Vec<Delivery>) -> impl Future<Output = ()> + Send;
}

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub queue: &'static str,
    pub prefetch: u16,
    pub batch_max: usize,
    pub linger: Duration,
    pub max_batches_in_flight: usize,
    pub grace: Duration,
}

/// Consumes `options.queue` until `shutdown` is cancelled, reconnecting as needed.
pub async fn run_consumer<H: BatchHandler>(
    link: Arc<Link>,
    options: ConsumerOptions,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(options.max_batches_in_flight.max(1)));
    let mut last_channel = None;
    while !shutdown.is_cancelled() {
        let Ok(conn) = link.connection().await else {
            break;
        };
        let consumed = async {
            let channel = conn.create_channel().await?;
            channel
                .basic_qos(options.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    options.queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((channel, consumer))
        }
        .await;
        let (channel, mut consumer) = match consumed {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(queue = options.queue, %error, "could not start consuming");
                link.report_failure();
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        tracing::info!(queue = options.queue, "consuming");
        let mut batch: Vec<Delivery> = Vec::with_capacity(options.batch_max);
        // When the batch's first delivery has waited `linger` (long past while it is empty).
        let mut ready_at = tokio::time::Instant::now();
        loop {
            let lingering = tokio::time::Instant::now() < ready_at;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    let tag = consumer.tag();
                    let cancel = channel.basic_cancel(tag, BasicCancelOptions::default());
                    let _ = super::within_close(options.queue, cancel).await;
                    break;
                }
                // Deliveries already here join the batch before a free slot takes it.
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        if batch.is_empty() {
                            ready_at = tokio::time::Instant::now() + options.linger;
                        }
                        batch.push(delivery);
                        if batch.len() >= options.batch_max {
                            dispatch(&tracker, &slots, &handler, std::mem::take(&mut batch)).await;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(queue = options.queue, %error, "consumer failed; reconnecting");
                        link.report_failure();
                        break;
                    }
                    None => {
                        tracing::warn!(queue = options.queue, "consumer stream ended; reconnecting");
                        link.report_failure();
                        break;
                    }
                },
                permit = slots.clone().acquire_owned(), if !batch.is_empty() && !lingering => {
                    if let Ok(permit) = permit {
                        run_batch(&tracker, &handler, std::mem::take(&mut batch), permit);
                    }
                }
                () = tokio::time::sleep_until(ready_at), if !batch.is_empty() && lingering => {}
            }
        }
        // Deliveries gathered but not dispatched are still unacknowledged: hand them over, so
        // they are either finished or returned to the queue with the channel.
        if !batch.is_empty() {
            dispatch(&tracker, &slots, &handler, std::mem::take(&mut batch)).await;
        }
        last_channel = Some(channel);
    }
    tracker.close();
    if tokio::time::timeout(options.grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            queue = options.queue,
            "in-flight work did not finish within the grace period"
        );
    }
    if let Some(channel) = last_channel {
        super::close_channel(&channel, "shutdown").await;
    }
}

async fn dispatch<H: BatchHandler>(
    tracker: &TaskTracker,
    slots: &Arc<Semaphore>,
    handler: &Arc<H>,
    batch: Vec<Delivery>,
) {
    let Ok(permit) = slots.clone().acquire_owned().await else {
        return;
    };
    run_batch(tracker, handler, batch, permit);
}

/// Runs `batch` as a task of its own, holding its slot until it is done.
fn run_batch<H: BatchHandler>(
    tracker: &TaskTracker,
    handler: &Arc<H>,
    batch: Vec<Delivery>,
    permit: OwnedSemaphorePermit,
) {
    let handler = handler.clone();
    tracker.spawn(async move {
        handler.handle(batch).await;
        drop(permit);
    });
}
