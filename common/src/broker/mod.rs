//! RabbitMQ plumbing shared by every service: one reconnecting connection per role, the
//! topology, a confirming publisher and a batching consumer.
//!
//! Reconnection is done here rather than by lapin's auto-recovery so that its rules are
//! explicit: a publisher republishes whatever was not confirmed on a fresh channel, and a
//! consumer starts over on a fresh channel (the broker redelivers what was unacknowledged).

pub mod backlog;
mod closing;
mod connection;
mod consumer;
mod dead_letter;
mod publisher;
mod queue_context;
pub mod topology;

pub use backlog::Backlog;
pub use closing::{CLOSE_WITHIN, close_channel, within_close};
pub use connection::Link;
pub use consumer::{BatchHandler, ConsumerOptions, run_consumer};
pub use dead_letter::dead_letter;
pub use lapin::message::Delivery;
pub use publisher::{Outgoing, PublishError, Publisher};
pub use queue_context::{GIVE_BACK_AFTER, QueueContext};

use lapin::types::{AMQPValue, FieldTable, ShortString};

/// Reads a string header from a delivery.
pub fn header_str<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a str> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
        AMQPValue::ShortString(value) => Some(value.as_str()),
        _ => None,
    }
}

/// How many times the broker has handed this delivery out before (quorum queues count it).
pub fn delivery_count(delivery: &Delivery) -> i64 {
    let Some(headers) = delivery.properties.headers().as_ref() else {
        return 0;
    };
    match headers.inner().get(&ShortString::from("x-delivery-count")) {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(AMQPValue::LongUInt(n)) => i64::from(*n),
        _ => 0,
    }
}

/// The header in which a publisher stamps the moment it published (microseconds since the
/// Unix epoch), so that consumers can time the broker hop (`herald_broker_hop_seconds`).
pub const PUBLISHED_AT_HEADER: &str = "herald-published-us";

/// `properties` with [`PUBLISHED_AT_HEADER`] set to now.
pub fn stamp_published(properties: &lapin::BasicProperties) -> lapin::BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    let now = crate::clock::Clock::now(&crate::clock::SystemClock).timestamp_micros();
    headers.insert(PUBLISHED_AT_HEADER.into(), AMQPValue::LongLongInt(now));
    properties.clone().with_headers(headers)
}

/// How long ago `delivery` was published, when its publisher stamped it; `None` for messages
/// without the stamp (outside programs') or from a clock ahead of this one.
pub fn published_age(delivery: &Delivery) -> Option<std::time::Duration> {
    let headers = delivery.properties.headers().as_ref()?;
    let AMQPValue::LongLongInt(at) = headers
        .inner()
        .get(&ShortString::from(PUBLISHED_AT_HEADER))?
    else {
        return None;
    };
    let now = crate::clock::Clock::now(&crate::clock::SystemClock).timestamp_micros();
    let micros = u64::try_from(now.checked_sub(*at)?).ok()?;
    Some(std::time::Duration::from_micros(micros))
}

/// Builds a header table from string pairs.
pub fn string_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in pairs {
        table.insert(name.into(), AMQPValue::LongString(value.into()));
    }
    table
}
