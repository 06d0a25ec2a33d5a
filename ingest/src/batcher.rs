//! Gathers events from concurrent requests into one database write and one broker message.
//!
//! A request's event waits at most `linger` for companions, so batching costs little latency
//! at low load and saves a round trip per event at high load. The reply goes out once the
//! batch is committed: the event is then durable, and its publication follows. If publishing
//! fails (broker down), the event stays unmatched in PostgreSQL and the scheduler's outbox
//! sweep publishes it later, so an accepted event is never lost.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::topology::EVENTS_EXCHANGE;
use herald_common::broker::{Outgoing, Publisher};
use herald_common::event::Event;
use herald_common::messages::EventBatch;
use herald_common::metrics::Metrics;
use herald_common::store::{InsertedEvent, Store};
use tokio::sync::{Semaphore, mpsc, oneshot};

struct Submission {
    event: Event,
    idempotency_key: Option<String>,
    reply: oneshot::Sender<Result<InsertedEvent, ()>>,
}

/// A handle for submitting events; cheap to clone.
#[derive(Clone)]
pub struct EventBatcher {
    queue: mpsc::Sender<Submission>,
}

/// The batch could not be stored.
#[derive(Debug)]
pub struct NotStored;

/// Flushes in progress at once: the next batch fills while earlier ones are written.
const CONCURRENT_FLUSHES: usize = 4;

impl EventBatcher {
    pub fn start(
        store: Store,
        publisher: Arc<Publisher>,
        metrics: Metrics,
        batch_max: usize,
        linger: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(batch_max * CONCURRENT_FLUSHES * 4);
        let worker = tokio::spawn(run(receiver, store, publisher, metrics, batch_max, linger));
        (Self { queue }, worker)
    }

    /// Stores `event` (deduplicated by id and idempotency key) and schedules its publication.
    pub async fn submit(
        &self,
        event: Event,
        idempotency_key: Option<String>,
    ) -> Result<InsertedEvent, NotStored> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Submission {
                event,
                idempotency_key,
                reply,
            })
            .await
            .map_err(|_| NotStored)?;
        answer.await.map_err(|_| NotStored)?.map_err(|()| NotStored)
    }
}

async fn run(
    mut receiver: mpsc::Receiver<Submission>,
    store: Store,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    batch_max: usize,
    linger: Duration,
) {
    let flushes = Arc::new(Semaphore::new(CONCURRENT_FLUSHES));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < batch_max {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let Ok(permit) = flushes.clone().acquire_owned().await else {
            break;
        };
        let (store, publisher, metrics) = (store.clone(), publisher.clone(), metrics.clone());
        tokio::spawn(async move {
            flush(batch, &store, &publisher, &metrics).await;
            drop(permit);
        });
    }
    // Drain: wait for every flush to finish before the worker ends.
    let _ = flushes.acquire_many(CONCURRENT_FLUSHES as u32).await;
}

async fn flush(batch: Vec<Submission>, store: &Store, publisher: &Publisher, metrics: &Metrics) {
    let rows: Vec<(&Event, Option<&str>)> = batch
        .iter()
        .map(|s| (&s.event, s.idempotency_key.as_deref()))
        .collect();
    let outcome = store.insert_events(&rows).await;
    let results = match outcome {
        Ok(results) => results,
        Err(error) => {
            tracing::error!(%error, events = batch.len(), "could not store events");
            for submission in batch {
                let _ = submission.reply.send(Err(()));
            }
            return;
        }
    };
    let mut fresh = Vec::new();
    for (submission, result) in batch.into_iter().zip(results) {
        if result == InsertedEvent::New {
            fresh.push(submission.event.clone());
        }
        let door = if result == InsertedEvent::New {
            "accepted"
        } else {
            "duplicate"
        };
        metrics
            .events_received
            .with_label_values(&["http", door])
            .inc();
        let _ = submission.reply.send(Ok(result));
    }
    if fresh.is_empty() {
        return;
    }
    let count = fresh.len() as u64;
    // Herald's batches go through herald.events like outside events; a batch of one type is
    // routed by that type, a mixed one by a fixed key (the matcher's queue takes every key).
    let routing_key = if fresh.iter().all(|e| e.event_type == fresh[0].event_type) {
        fresh[0].event_type.as_str().to_owned()
    } else {
        "herald.batch".to_owned()
    };
    let message = Outgoing::message(EVENTS_EXCHANGE, &routing_key, &EventBatch { events: fresh });
    match publisher.publish(&message).await {
        Ok(()) => metrics.stage_done("ingest", count),
        Err(error) => {
            tracing::warn!(%error, events = count, "publishing accepted events failed; the outbox sweep will resend them")
        }
    }
}
