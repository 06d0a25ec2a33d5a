//! Gathers events from concurrent requests into one database write and one broker message.
//!
//! Group commit: a batch is written as soon as one of the writes in flight is free, with
//! whatever came in meanwhile, so an event alone waits for no companion, and under load the
//! batches grow while the earlier writes finish (a `linger`, if configured, also holds the
//! first event that long). The reply goes out once the
//! batch is committed: the event is then durable, and its publication follows. If publishing
//! fails (broker down), the event stays unmatched in PostgreSQL and the scheduler's outbox
//! sweep publishes it later, so an accepted event is never lost.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::topology::EVENTS_EXCHANGE;
use herald_common::broker::{Backlog, Outgoing, Publisher};
use herald_common::event::Event;
use herald_common::messages::EventBatch;
use herald_common::metrics::{Door, Metrics, PathStep, Received, Stage, StageWork};
use herald_common::store::{InsertedEvent, Store, WriteFailure};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// One request's events (one, or a whole batch), stored together or not at all.
struct Submission {
    events: Vec<(Event, Option<String>)>,
    /// The door they came by, for `herald_events_received_total`.
    door: Door,
    /// Ingest's stage count: in from submission, out once published (or found duplicate).
    work: StageWork,
    reply: oneshot::Sender<Result<Vec<InsertedEvent>, NotStored>>,
    /// When it reached the batcher (for `ingest_batch_wait`).
    queued_at: Instant,
}

/// A handle for submitting events; cheap to clone.
#[derive(Clone)]
pub struct EventBatcher {
    queue: mpsc::Sender<Submission>,
    metrics: Metrics,
    /// New events are refused for now while this backlog is past `max_backlog` (0: never).
    backlog: Backlog,
    max_backlog: u64,
}

/// Why a request's events were not stored.
#[derive(Debug)]
pub enum NotStored {
    /// PostgreSQL refused this request's own data (its words): sending it again cannot help.
    /// The requests batched with it were stored as if it had not been there.
    Refused(String),
    /// The database (or ingest) is unavailable for now: the request may be sent again.
    Unavailable,
    /// More work waits ahead of delivery than `ingest.max_backlog`: the request may be sent
    /// again once delivery has caught up.
    Overloaded,
}

/// Flushes in progress at once: the next batch fills while earlier ones are written.
const CONCURRENT_FLUSHES: usize = 4;
/// Publications in progress at once; more wait their turn. Storing never waits for them.
const CONCURRENT_PUBLISHES: usize = 16;
/// Stored batches waiting for, or in, publication. A publication waits for the broker (up to
/// the publisher's deadline while the broker is away); past this many, a stored batch is left
/// to the outbox sweep rather than held in memory. Far above what a healthy broker leaves
/// waiting, so the outbox's delay is only ever paid during an outage.
const QUEUED_PUBLISHES: usize = 1024;

impl EventBatcher {
    pub fn start(
        store: Store,
        publisher: Arc<Publisher>,
        metrics: Metrics,
        batch_max: usize,
        linger: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(batch_max * CONCURRENT_FLUSHES * 4);
        // Publishing notes its messages' sizes here; admission reads the backlog by them.
        let backlog = Backlog::default();
        let worker = tokio::spawn(run(
            receiver,
            store,
            publisher,
            metrics.clone(),
            (batch_max, linger),
            backlog.clone(),
        ));
        let batcher = Self {
            queue,
            metrics,
            backlog,
            max_backlog: 0,
        };
        (batcher, worker)
    }

    /// Refuses new events ([`NotStored::Overloaded`]) while `backlog`, read in events by the
    /// size of the batches published, is past `max_backlog`.
    pub fn with_admission(self, backlog: Backlog, max_backlog: u64) -> Self {
        Self {
            backlog: backlog.sized_by(&self.backlog),
            max_backlog,
            ..self
        }
    }

    /// Stores `event`, which came in by `door` (deduplicated by id and idempotency key), and
    /// schedules its publication.
    pub async fn submit(
        &self,
        door: Door,
        event: Event,
        idempotency_key: Option<String>,
    ) -> Result<InsertedEvent, NotStored> {
        let mut results = self
            .submit_all(door, vec![(event, idempotency_key)])
            .await?;
        results.pop().ok_or(NotStored::Unavailable)
    }

    /// Stores a request's events in one transaction (all or none), each deduplicated by id
    /// and idempotency key, and schedules their publication. Results are in `events`' order.
    pub async fn submit_all(
        &self,
        door: Door,
        events: Vec<(Event, Option<String>)>,
    ) -> Result<Vec<InsertedEvent>, NotStored> {
        if self.backlog.refuses(self.max_backlog) {
            self.metrics
                .count_events(door, Received::Deferred, events.len() as u64);
            return Err(NotStored::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        let work = self.metrics.stage_enter(Stage::Ingest, events.len() as u64);
        self.queue
            .send(Submission {
                events,
                door,
                work,
                reply,
                queued_at: Instant::now(),
            })
            .await
            .map_err(|_| NotStored::Unavailable)?;
        answer.await.map_err(|_| NotStored::Unavailable)?
    }
}

async fn run(
    mut receiver: mpsc::Receiver<Submission>,
    store: Store,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    (batch_max, linger): (usize, Duration),
    sizes: Backlog,
) {
    let flushes = Arc::new(Semaphore::new(CONCURRENT_FLUSHES));
    let publishes = Arc::new(Semaphore::new(CONCURRENT_PUBLISHES));
    let queued = Arc::new(Semaphore::new(QUEUED_PUBLISHES));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let Some(permit) = gather(&mut receiver, &mut batch, &flushes, batch_max, linger).await
        else {
            break;
        };
        for submission in &batch {
            metrics.step_since(PathStep::IngestBatchWait, submission.queued_at);
        }
        let (store, publisher, metrics) = (store.clone(), publisher.clone(), metrics.clone());
        let (publishes, queued, sizes) = (publishes.clone(), queued.clone(), sizes.clone());
        tokio::spawn(async move {
            let (fresh, work) = write_batch(batch, &store, &metrics).await;
            drop(permit);
            if fresh.is_empty() {
                return;
            }
            // Left to the outbox or not published: not counted out here (the outbox stage
            // counts what it republishes).
            let Ok(_queued) = queued.try_acquire_owned() else {
                tracing::warn!(
                    events = fresh.len(),
                    "the broker is slow or away; leaving stored events to the outbox sweep"
                );
                return;
            };
            // The semaphore is never closed: acquiring only waits for a turn.
            if let Ok(_publishing) = publishes.acquire_owned().await {
                let started = Instant::now();
                sizes.note_published(fresh.len());
                publish(fresh, work, &publisher).await;
                metrics.step_since(PathStep::IngestEventPublish, started);
            }
        });
    }
    // Drain: wait for every flush and publication to finish before the worker ends.
    let _ = flushes.acquire_many(CONCURRENT_FLUSHES as u32).await;
    let _ = queued.acquire_many(QUEUED_PUBLISHES as u32).await;
}

/// Adds to `batch` what comes in until a write is free (and `linger` since the first has
/// passed) or the batch is full; returns the write's permit (`None`: the batcher is closing).
async fn gather(
    receiver: &mut mpsc::Receiver<Submission>,
    batch: &mut Vec<Submission>,
    flushes: &Arc<Semaphore>,
    batch_max: usize,
    linger: Duration,
) -> Option<OwnedSemaphorePermit> {
    let mut events: usize = batch.iter().map(|s| s.events.len()).sum();
    let deadline = Instant::now() + linger;
    let mut open = true;
    loop {
        // What has come in already joins at once.
        while events < batch_max && open {
            match receiver.try_recv() {
                Ok(next) => {
                    events += next.events.len();
                    batch.push(next);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let lingering = Instant::now() < deadline;
        if events >= batch_max || !open {
            return flushes.clone().acquire_owned().await.ok();
        }
        if !lingering && let Ok(permit) = flushes.clone().try_acquire_owned() {
            return Some(permit);
        }
        tokio::select! {
            biased;
            next = receiver.recv() => match next {
                Some(next) => {
                    events += next.events.len();
                    batch.push(next);
                }
                None => open = false,
            },
            permit = flushes.clone().acquire_owned(), if !lingering => return permit.ok(),
            () = tokio::time::sleep_until(deadline), if lingering => {}
        }
    }
}

/// Stores a batch and answers its requests; returns the events that were new and the stage
/// work still pending for them (duplicates are done: nothing more happens to them).
async fn write_batch(
    batch: Vec<Submission>,
    store: &Store,
    metrics: &Metrics,
) -> (Vec<Event>, Option<StageWork>) {
    // One statement, one transaction, while nothing is wrong: a submission's events are stored
    // together or not at all, and one whose data is refused fails alone.
    let groups: Vec<&[(Event, Option<String>)]> =
        batch.iter().map(|s| s.events.as_slice()).collect();
    let started = Instant::now();
    let outcomes = store.insert_event_groups(&groups).await;
    metrics.step_since(PathStep::IngestEventCommit, started);
    let mut fresh = Vec::new();
    let mut pending: Option<StageWork> = None;
    for (submission, outcome) in batch.into_iter().zip(outcomes) {
        let Submission {
            events,
            door,
            mut work,
            reply,
            queued_at: _,
        } = submission;
        let mine = match outcome {
            Ok(mine) => mine,
            Err(failure) => {
                // Its stage work is dropped uncounted: it never entered the pipeline.
                let _ = reply.send(Err(not_stored(failure, events.len())));
                continue;
            }
        };
        for ((event, _), result) in events.into_iter().zip(&mine) {
            if *result == InsertedEvent::New {
                fresh.push(event);
                metrics.count_events(door, Received::Accepted, 1);
            } else {
                work.done(1);
                metrics.count_events(door, Received::Duplicate, 1);
            }
        }
        let _ = reply.send(Ok(mine));
        match &mut pending {
            Some(all) => all.absorb(work),
            None => pending = Some(work),
        }
    }
    (fresh, pending)
}

#[cfg(test)]
mod tests;

/// A submission's failure, logged, as its caller is to be told.
fn not_stored(failure: WriteFailure<sqlx::Error>, events: usize) -> NotStored {
    match failure {
        WriteFailure::Refused(error) => {
            tracing::warn!(%error, events, "the database refused a request's events");
            let words = error
                .as_database_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_else(|| error.to_string());
            NotStored::Refused(words)
        }
        WriteFailure::Failed(error) => {
            tracing::error!(%error, events, "could not store events");
            NotStored::Unavailable
        }
        WriteFailure::Unanswered => {
            tracing::error!(events, "storing events answered no result for a request");
            NotStored::Unavailable
        }
    }
}

/// Publishes stored events to the matchers; on failure the outbox sweep sends them later.
async fn publish(fresh: Vec<Event>, work: Option<StageWork>, publisher: &Publisher) {
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
        Ok(()) => {
            if let Some(work) = work {
                work.done_all();
            }
        }
        Err(error) => {
            tracing::warn!(%error, events = count, "publishing accepted events failed; the outbox sweep will resend them")
        }
    }
}
