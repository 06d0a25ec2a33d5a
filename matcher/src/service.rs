//! The matcher service: consume events in batches, record executions, publish jobs, then ack.
//!
//! A batch is acknowledged only after its executions are committed and its jobs confirmed by
//! the broker. A redelivered event finds its executions already recorded (unique per event and
//! action) and only re-sends jobs that never started.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use herald_common::broker::topology::{
    EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE, JOBS_EXCHANGE, MATCHER_QUEUE,
};
use herald_common::broker::{
    Backlog, BatchHandler, ConsumerOptions, Delivery, Outgoing, Publisher, QueueContext,
    header_str, run_consumer,
};
use herald_common::clock::SharedClock;
use herald_common::config::{Config, ServiceName};
use herald_common::event::{Event, EventLimits};
use herald_common::ids::{ExecutionId, TenantId};
use herald_common::messages::{Lane, UNSTORABLE, decode_events, is_internal};
use herald_common::metrics::{Door, Metrics, PathStep, Received, Stage};
use herald_common::service::{Base, Running};
use herald_common::store::{NewExecution, Store, WriteFailure, is_data_error_in, write_isolated};
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind, TRACEPARENT};
use lapin::options::BasicAckOptions;
use tokio_util::sync::CancellationToken;

use crate::dispatch::first_attempt_jobs;
use crate::tenants::{KnownTenants, UNKNOWN_TENANT};
use herald_engine::barrier::Barrier;
use herald_engine::feed::live_engine;
use herald_engine::{Engine, EventRef};

/// Starts the matcher; it runs until `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let base = Base::start(ServiceName::Matcher, config, shutdown.clone()).await?;
    // Complete before the first event is consumed: an event matched against a half-loaded
    // engine would be recorded as matching nothing.
    let (engine, barrier) = live_engine(&base).await?;
    // What waits for the executor: past `matcher.max_backlog`, no new batch is taken.
    let (backlog, sampling) = Backlog::watch(
        base.publisher.link().clone(),
        &[EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE],
        base.metrics.clone(),
        shutdown.clone(),
    );
    base.tasks.spawn(sampling);
    let handler = Arc::new(Matcher {
        backlog,
        max_backlog: base.config.matcher.max_backlog,
        shutdown: shutdown.clone(),
        clock: base.clock.clone(),
        engine,
        barrier,
        tenants: KnownTenants::new(base.store.clone()),
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        limits: base.config.ingest.event_limits(),
    });
    // Room for every batch in flight: with a prefetch of one batch, only one batch could be
    // out at a time, and the matcher's rate was one batch per database-and-broker round trip
    // (256 events per ~50 ms under load: the 5k events/s the first load runs hit).
    let batch_max = base.config.matcher.batch_max_messages;
    let prefetch = (batch_max * BATCHES_IN_FLIGHT).max(usize::from(base.config.amqp.prefetch));
    let options = ConsumerOptions {
        queue: MATCHER_QUEUE,
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
        batch_max,
        linger: Duration::from_micros(base.config.matcher.batch_linger_us),
        max_batches_in_flight: BATCHES_IN_FLIGHT,
        grace: base.config.shutdown.grace(),
    };
    base.tasks.spawn(run_consumer(
        base.consume_link.clone(),
        options,
        handler,
        shutdown.clone(),
    ));
    Ok(base.into_running(None))
}

/// Batches matched and recorded at once.
const BATCHES_IN_FLIGHT: usize = 4;

struct Matcher {
    /// Jobs waiting for the executor; past `max_backlog` a batch waits before it is matched.
    backlog: Backlog,
    max_backlog: u64,
    shutdown: CancellationToken,
    clock: SharedClock,
    engine: Arc<Engine>,
    /// Makes the engine hold every action saved before the batch's events were accepted.
    barrier: Arc<Barrier>,
    tenants: KnownTenants,
    store: Store,
    publisher: Arc<Publisher>,
    metrics: Metrics,
    limits: EventLimits,
}

/// One delivery's events, once decoded.
struct Decoded {
    delivery: Delivery,
    events: Vec<Event>,
    /// Herald's own batches were stored by ingest; outside events are stored here.
    stored: bool,
}

impl BatchHandler for Matcher {
    async fn handle(&self, batch: Vec<Delivery>) {
        // Delivery is behind: matching more would take the machine from it. The batch (and the
        // prefetch behind it) waits, and so does the broker's queue.
        self.backlog
            .wait_within(self.max_backlog, &self.shutdown)
            .await;
        let now = self.clock.now();
        let queue = self.queue();
        let mut decoded = Vec::with_capacity(batch.len());
        // One span per event, ended once the batch is matched and its jobs are handed on.
        let mut spans = Vec::new();
        for delivery in batch {
            let kind = delivery
                .properties
                .kind()
                .as_ref()
                .map(|s| s.as_str().to_owned());
            let stored = is_internal(kind.as_deref());
            let events = queue
                .receive(&delivery, |d| {
                    let props = &d.properties;
                    decode_events(
                        kind.as_deref(),
                        props.content_type().as_ref().map(|s| s.as_str()),
                        props.message_id().as_ref().map(|s| s.as_str()),
                        &d.data,
                        now,
                        &self.limits,
                    )
                    .inspect_err(|_| {
                        // An outside program's event that cannot be read: refused at the
                        // broker door, as ingest refuses one at the HTTP door.
                        if !stored {
                            self.metrics
                                .count_events(Door::Broker, Received::Rejected, 1);
                        }
                    })
                })
                .await;
            let Some(mut events) = events else {
                continue;
            };
            // An outside publisher's trace comes in the AMQP header; Herald's own batches
            // carry one per event.
            let header = header_str(&delivery, TRACEPARENT).map(str::to_owned);
            for event in &mut events {
                let parent = event.trace.take().or_else(|| header.clone());
                let span = HeraldSpan::start(
                    "herald.match",
                    SpanKind::Consumer,
                    parent.as_deref(),
                    vec![KeyValue::new(
                        "herald.event_id",
                        event.id.as_str().to_owned(),
                    )],
                );
                event.trace = Some(span.traceparent());
                spans.push(span);
            }
            decoded.push(Decoded {
                delivery,
                events,
                stored,
            });
        }
        // Outside publishers name their tenant themselves: an event of a tenant that does not
        // exist is parked, not stored (see `tenants`).
        let outside = decoded.iter().filter(|d| !d.stored).flat_map(|d| &d.events);
        let checked = self.tenants.unknown(outside.map(|e| e.tenant_id)).await;
        let waiting = tokio::time::Instant::now();
        let checked = match checked {
            Ok(unknown) => self.barrier.pass().await.map(|()| {
                self.metrics.step_since(PathStep::MatcherBarrier, waiting);
                unknown
            }),
            Err(error) => Err(anyhow::Error::from(error)),
        };
        if let Ok(unknown) = &checked
            && !unknown.is_empty()
        {
            let parked = decoded.extract_if(.., |d| {
                !d.stored && d.events.iter().any(|e| unknown.contains(&e.tenant_id))
            });
            for d in parked {
                self.metrics
                    .count_events(Door::Broker, Received::Rejected, d.events.len() as u64);
                let reason = format!("tenant {} does not exist", d.events[0].tenant_id);
                queue.park(&d.delivery, UNKNOWN_TENANT, &reason).await;
            }
        }
        if decoded.is_empty() {
            return;
        }
        let count: usize = decoded.iter().map(|d| d.events.len()).sum();
        // Out only once acknowledged; a batch returned to the broker is counted in again.
        let mut work = self.metrics.stage_enter(Stage::Matcher, count as u64);
        if let Err(error) = checked {
            let deliveries: Vec<&Delivery> = decoded.iter().map(|d| &d.delivery).collect();
            return queue.give_back(&deliveries, error).await;
        }
        // One transaction for the batch while nothing is wrong; a message whose own data the
        // database refuses is parked alone, and the others are recorded without it.
        let outcomes = write_isolated(decoded.len(), is_data_error_in, |range| {
            let chunk = &decoded[range];
            async move { self.process(chunk).await.map(|()| vec![(); chunk.len()]) }
        })
        .await;
        let mut returned = Vec::new();
        let mut acks = Vec::new();
        for (d, outcome) in decoded.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    acks.push(d.delivery.ack(BasicAckOptions::default()));
                    work.done(d.events.len() as u64);
                }
                Err(WriteFailure::Refused(error)) => {
                    if !d.stored {
                        self.metrics.count_events(
                            Door::Broker,
                            Received::Rejected,
                            d.events.len() as u64,
                        );
                    }
                    let reason = format!("the database refused the message's data: {error:#}");
                    queue.park(&d.delivery, UNSTORABLE, &reason).await;
                    work.done(d.events.len() as u64);
                }
                Err(failure) => returned.push((d, failure)),
            }
        }
        // Acknowledged together: awaited one at a time, each ack waited for the connection's
        // thread to write it, and a batch's acks took longer than the batch's matching,
        // recording and publishing together.
        join_all(acks).await;
        if let Some((_, failure)) = returned.first() {
            let error = failure.to_string();
            let deliveries: Vec<&Delivery> = returned.iter().map(|(d, _)| &d.delivery).collect();
            queue.give_back(&deliveries, error).await;
        }
    }
}

impl Matcher {
    fn queue(&self) -> QueueContext<'_> {
        QueueContext {
            queue: MATCHER_QUEUE,
            publisher: &self.publisher,
            metrics: &self.metrics,
        }
    }

    async fn process(&self, decoded: &[Decoded]) -> anyhow::Result<()> {
        // Each event with whether it still has to be stored (it came straight to the broker),
        // once: two copies in one batch (an outside program published it twice) would have one
        // statement record the same execution twice, which PostgreSQL refuses.
        let mut seen = HashSet::new();
        let events: Vec<(&Event, bool)> = decoded
            .iter()
            .flat_map(|d| d.events.iter().map(move |e| (e, !d.stored)))
            .filter(|(e, _)| seen.insert((e.tenant_id, e.id.as_str())))
            .collect();

        let mut executions: Vec<NewExecution> = Vec::new();
        let mut outside = Vec::new();
        let mut matched_counts = Vec::with_capacity(events.len());
        let mut matched = Vec::new();
        let matching = tokio::time::Instant::now();
        for &(event, to_store) in &events {
            matched.clear();
            // Accepted events carry validated JSON, so this cannot fail; if it somehow did,
            // the event is recorded as matching nothing rather than blocking the batch.
            if let Err(error) = self.engine.matches(&EventRef::of(event), &mut matched) {
                tracing::error!(%error, event = event.id.as_str(), "unreadable event data");
            }
            self.metrics.matches_per_event.observe(matched.len() as f64);
            if to_store {
                outside.push((event, matched.len() as i32));
            } else {
                matched_counts.push((event.tenant_id, event.id.clone(), matched.len() as i32));
            }
            for action in &matched {
                executions.push(NewExecution {
                    id: ExecutionId::new(),
                    tenant_id: event.tenant_id,
                    event_id: event.id.clone(),
                    action_id: action.id,
                    max_attempts: action.max_attempts as i32,
                    priority: action.priority,
                });
            }
        }

        self.metrics.step_since(PathStep::MatcherMatch, matching);

        // Messages the broker hands out again: their earlier hand-over may have been lost.
        let again: HashSet<(TenantId, &str)> = decoded
            .iter()
            .filter(|d| d.delivery.redelivered)
            .flat_map(|d| &d.events)
            .map(|e| (e.tenant_id, e.id.as_str()))
            .collect();

        let recording = tokio::time::Instant::now();
        let mut tx = self.store.pool().begin().await?;
        let inserted = Store::insert_events_tx(&mut tx, &outside).await?;
        let new_outside: HashSet<(TenantId, &str)> =
            inserted.iter().map(|(t, id)| (*t, id.as_str())).collect();
        // An outside event whose id is already stored (published twice, or an HTTP event's id
        // reused) starts nothing new, as a repeated id does at ingest: its executions are
        // dropped before they are recorded, unless its own message is redelivered (then they
        // are the ones recorded the first time, and find themselves already there).
        let repeated: HashSet<(TenantId, &str)> = outside
            .iter()
            .map(|(e, _)| (e.tenant_id, e.id.as_str()))
            .filter(|key| !again.contains(key) && !new_outside.contains(key))
            .collect();
        if !repeated.is_empty() {
            executions.retain(|x| !repeated.contains(&(x.tenant_id, x.event_id.as_str())));
        }
        let stored = Store::insert_executions(&mut tx, &executions).await?;
        Store::mark_events_matched(&mut tx, &matched_counts).await?;
        tx.commit().await?;
        self.metrics
            .step_since(PathStep::MatcherExecutionsCommit, recording);

        // A pending execution recorded before gets its job again only from a redelivered
        // message. Any other copy would race the job already on its way, and both attempts
        // would be sent.
        let stored: Vec<_> = stored
            .into_iter()
            .filter(|s| s.inserted || again.contains(&(s.tenant_id, s.event_id.as_str())))
            .collect();
        let by_event: HashMap<(TenantId, &str), &Event> = events
            .iter()
            .map(|(e, _)| ((e.tenant_id, e.id.as_str()), *e))
            .collect();
        let batches = first_attempt_jobs(&stored, |s| {
            by_event.get(&(s.tenant_id, s.event_id.as_str())).copied()
        });
        let messages: Vec<Outgoing> = batches
            .iter()
            .map(|batch| Outgoing::message(JOBS_EXCHANGE, Lane::First.routing_key(), batch))
            .collect();
        for batch in &batches {
            self.backlog.note_published(batch.jobs.len());
        }
        let publishing = tokio::time::Instant::now();
        self.publisher.publish_all(&messages).await?;
        self.metrics
            .step_since(PathStep::MatcherJobsPublish, publishing);

        // Counted once handed on, once per outside message: the first copy of a new event is
        // accepted, any other copy a duplicate; a redelivered message that stored nothing new
        // was counted when it first came.
        let mut counted = HashSet::new();
        let (mut accepted, mut duplicates) = (0, 0);
        for d in decoded.iter().filter(|d| !d.stored) {
            for e in &d.events {
                let key = (e.tenant_id, e.id.as_str());
                if new_outside.contains(&key) && counted.insert(key) {
                    accepted += 1;
                } else if !d.delivery.redelivered {
                    duplicates += 1;
                }
            }
        }
        self.metrics
            .count_events(Door::Broker, Received::Accepted, accepted);
        self.metrics
            .count_events(Door::Broker, Received::Duplicate, duplicates);
        Ok(())
    }
}
