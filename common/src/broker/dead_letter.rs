//! Parking a message that cannot be processed: a copy goes to `herald.dead` with the reason in
//! its headers, then the original is acknowledged, so a bad message never blocks its queue.

use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::AMQPValue;

use super::topology::{DEAD_CODE_HEADER, DEAD_EXCHANGE, DEAD_QUEUE_HEADER, DEAD_REASON_HEADER};
use super::{Delivery, Outgoing, Publisher};
use crate::metrics::Metrics;

/// Dead-letters `delivery` (consumed from `queue`) with a stable `code` and a readable reason.
pub async fn dead_letter(
    publisher: &Publisher,
    metrics: &Metrics,
    delivery: &Delivery,
    queue: &str,
    code: &str,
    reason: &str,
) {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        DEAD_REASON_HEADER.into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(DEAD_CODE_HEADER.into(), AMQPValue::LongString(code.into()));
    headers.insert(
        DEAD_QUEUE_HEADER.into(),
        AMQPValue::LongString(queue.into()),
    );
    let message = Outgoing {
        exchange: DEAD_EXCHANGE.into(),
        routing_key: queue.into(),
        body: delivery.data.clone(),
        properties: delivery.properties.clone().with_headers(headers),
    };
    tracing::warn!(queue, code, reason, "dead-lettering a message");
    match publisher.publish(&message).await {
        Ok(()) => {
            metrics.dead_letters.with_label_values(&[queue, code]).inc();
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        Err(error) => {
            // Keep the message rather than lose it; it comes back and is tried again.
            tracing::error!(%error, "could not dead-letter; returning the message to its queue");
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }
}
