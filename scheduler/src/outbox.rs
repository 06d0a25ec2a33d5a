//! The outbox sweep: events that ingest stored but whose publication was lost (a broker outage
//! at the wrong moment) are published again. Redelivery is harmless: the matcher records at
//! most one execution per event and action.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::topology::EVENTS_EXCHANGE;
use herald_common::broker::{Outgoing, Publisher};
use herald_common::messages::EventBatch;
use herald_common::metrics::{Metrics, Stage};
use herald_common::store::Store;

use herald_common::clock::Clock;

pub struct OutboxSweep<C: Clock> {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub clock: C,
    /// How long an event may wait for the matcher before it is sent again.
    pub stale_after: Duration,
}

/// Events re-sent per broker message.
const EVENTS_PER_MESSAGE: usize = 100;

impl<C: Clock> OutboxSweep<C> {
    pub async fn sweep_once(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let stale = chrono::Duration::from_std(self.stale_after)?;
        let events = self
            .store
            .take_unmatched_events(now - stale, now - stale, 1000)
            .await?;
        // Out once confirmed; on an error they stay in the outbox and are taken in again.
        let work = self.metrics.stage_enter(Stage::Outbox, events.len() as u64);
        let messages: Vec<Outgoing> = events
            .chunks(EVENTS_PER_MESSAGE)
            .map(|chunk| {
                let batch = EventBatch {
                    events: chunk.to_vec(),
                };
                Outgoing::message(EVENTS_EXCHANGE, "herald.outbox", &batch)
            })
            .collect();
        self.publisher.publish_all(&messages).await?;
        if !events.is_empty() {
            tracing::info!(
                events = events.len(),
                "re-sent events the matcher never recorded"
            );
            self.metrics.outbox_republished.inc_by(events.len() as u64);
        }
        work.done_all();
        Ok(events.len())
    }
}
