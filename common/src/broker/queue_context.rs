//! What every consumer does around its own work, for the queue it consumes: counting a
//! redelivery, decoding the versioned message and parking what cannot be decoded, parking a
//! message its work refuses, and giving back what a failure of the moment left undone.

use std::fmt::Display;
use std::time::Duration;

use lapin::options::BasicNackOptions;

use super::{Delivery, Publisher, dead_letter};
use crate::messages::{DecodeError, Message};
use crate::metrics::Metrics;

/// How long a consumer waits before giving deliveries back after a failure of the moment, so
/// that an outage (the database, the broker) does not become a hot redelivery loop.
pub const GIVE_BACK_AFTER: Duration = Duration::from_millis(500);

/// One queue's consumer, as the shared steps need it.
#[derive(Clone, Copy)]
pub struct QueueContext<'a> {
    pub queue: &'static str,
    pub publisher: &'a Publisher,
    pub metrics: &'a Metrics,
}

impl QueueContext<'_> {
    /// Counts `delivery` if the broker hands it out again, then decodes it with `decode`; one
    /// that cannot be decoded is parked (dead-lettered with the error's code and words) and
    /// gives `None`.
    pub async fn receive<T>(
        &self,
        delivery: &Delivery,
        decode: impl FnOnce(&Delivery) -> Result<T, DecodeError>,
    ) -> Option<T> {
        if delivery.redelivered {
            self.metrics
                .redeliveries
                .with_label_values(&[self.queue])
                .inc();
        }
        if let Some(age) = super::published_age(delivery) {
            self.metrics
                .broker_hop
                .with_label_values(&[self.queue])
                .observe(age.as_secs_f64());
        }
        match decode(delivery) {
            Ok(decoded) => Some(decoded),
            Err(error) => {
                self.park(delivery, error.code(), &error.to_string()).await;
                None
            }
        }
    }

    /// [`QueueContext::receive`] for one of Herald's own messages of type `M`.
    pub async fn receive_message<M: Message>(&self, delivery: &Delivery) -> Option<M> {
        self.receive(delivery, |d| {
            M::decode(d.properties.kind().as_ref().map(|k| k.as_str()), &d.data)
        })
        .await
    }

    /// Dead-letters `delivery` with a stable `code` and a readable reason, then acknowledges
    /// it: a message that cannot be handled never blocks its queue.
    pub async fn park(&self, delivery: &Delivery, code: &str, reason: &str) {
        dead_letter(
            self.publisher,
            self.metrics,
            delivery,
            self.queue,
            code,
            reason,
        )
        .await;
    }

    /// Gives `deliveries` back to the queue after a failure of the moment (logged with
    /// `error`), once [`GIVE_BACK_AFTER`] has passed; the broker hands them out again.
    pub async fn give_back(&self, deliveries: &[&Delivery], error: impl Display) {
        tracing::warn!(
            queue = self.queue,
            error = format!("{error:#}"),
            "giving work back to the queue"
        );
        tokio::time::sleep(GIVE_BACK_AFTER).await;
        for delivery in deliveries {
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }
}
