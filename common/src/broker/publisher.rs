//! A publisher with confirms: many messages in flight, each awaited, and whatever the broker
//! did not confirm is published again on a fresh channel after a failure.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::{Mutex, Semaphore};

use super::Link;
use crate::messages::Message;
use crate::metrics::Metrics;

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl Outgoing {
    /// A Herald message, persistent, with its type and version in the `type` property.
    pub fn message<M: Message>(exchange: &str, routing_key: &str, message: &M) -> Self {
        Self::raw(exchange, routing_key, message.encode(), &M::type_name())
    }

    /// An already-encoded Herald message of type `type_name`.
    pub fn raw(exchange: &str, routing_key: &str, body: Vec<u8>, type_name: &str) -> Self {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/msgpack".into())
            .with_type(type_name.into());
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            body,
            properties,
        }
    }

    /// An event as an outside publisher sends it to `herald.events`: JSON, routed by its
    /// type, deduplicated by `message_id`.
    pub fn json_event(event_type: &str, body: Vec<u8>, message_id: &str) -> Self {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message_id.into());
        Self {
            exchange: crate::broker::topology::EVENTS_EXCHANGE.into(),
            routing_key: event_type.into(),
            body,
            properties,
        }
    }

    pub fn with_headers(mut self, headers: FieldTable) -> Self {
        self.properties = self.properties.with_headers(headers);
        self
    }
}

/// Why messages could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker did not confirm {pending} message(s) within {waited:?}")]
    Timeout { pending: usize, waited: Duration },
    #[error("no queue is bound for routing key {0:?}")]
    Unroutable(String),
    #[error("shutting down")]
    ShuttingDown,
}

/// Publishes with confirms over one channel, reopened when it breaks.
pub struct Publisher {
    link: Arc<Link>,
    channel: Mutex<Option<Channel>>,
    window: Semaphore,
    deadline: Duration,
    metrics: Metrics,
}

enum Sent {
    Confirmed,
    Retry,
    Unroutable(String),
}

impl Publisher {
    /// `window` bounds messages awaiting confirms; `deadline` bounds how long one call keeps
    /// retrying before it reports failure to its caller.
    pub fn new(link: Arc<Link>, window: usize, deadline: Duration, metrics: Metrics) -> Self {
        Self {
            link,
            channel: Mutex::new(None),
            window: Semaphore::new(window),
            deadline,
            metrics,
        }
    }

    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(channel) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        loop {
            let conn = self
                .link
                .connection()
                .await
                .map_err(|_| PublishError::ShuttingDown)?;
            let opened = async {
                let channel = conn.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Ok::<_, lapin::Error>(channel)
            }
            .await;
            match opened {
                Ok(channel) => {
                    *slot = Some(channel.clone());
                    return Ok(channel);
                }
                Err(error) => {
                    tracing::warn!(%error, "could not open a publishing channel");
                    self.link.report_failure();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn forget_channel(&self, broken: &Channel) {
        let mut slot = self.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == broken.id()) {
            *slot = None;
        }
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: &Outgoing) -> Result<(), PublishError> {
        self.publish_all(std::slice::from_ref(message)).await
    }

    /// Publishes every message, all in flight at once, and returns when the broker has
    /// confirmed each one. Messages that were nacked or lost with a broken channel are sent
    /// again (so a consumer may see a message twice, never zero times).
    pub async fn publish_all(&self, messages: &[Outgoing]) -> Result<(), PublishError> {
        if messages.is_empty() {
            return Ok(());
        }
        let started = tokio::time::Instant::now();
        let mut pending: Vec<&Outgoing> = messages.iter().collect();
        let mut pause = Duration::from_millis(50);
        loop {
            let channel = self.channel().await?;
            let results = join_all(pending.iter().map(|m| self.send_one(&channel, m))).await;
            let mut broken = false;
            let mut retry = Vec::new();
            for (message, result) in pending.iter().zip(results) {
                match result {
                    Ok(Sent::Confirmed) => {}
                    Ok(Sent::Unroutable(key)) => return Err(PublishError::Unroutable(key)),
                    Ok(Sent::Retry) => retry.push(*message),
                    Err(_) => {
                        broken = true;
                        retry.push(*message);
                    }
                }
            }
            if retry.is_empty() {
                return Ok(());
            }
            if broken {
                self.link.report_failure();
                self.forget_channel(&channel).await;
            }
            let waited = started.elapsed();
            if waited >= self.deadline {
                return Err(PublishError::Timeout {
                    pending: retry.len(),
                    waited,
                });
            }
            tracing::debug!(count = retry.len(), "republishing unconfirmed messages");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            pending = retry;
        }
    }

    async fn send_one(&self, channel: &Channel, message: &Outgoing) -> lapin::Result<Sent> {
        let _permit = self
            .window
            .acquire()
            .await
            .map_err(|_| lapin::Error::from(std::io::Error::other("closed")))?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = channel
            .basic_publish(
                message.exchange.as_str().into(),
                message.routing_key.as_str().into(),
                options,
                &message.body,
                super::stamp_published(&message.properties),
            )
            .await?;
        // Every confirm is awaited: a dropped confirm future would lose its nack.
        let outcome = tokio::time::timeout(Duration::from_secs(30), confirm)
            .await
            .map_err(|_| {
                lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
            })??;
        Ok(match outcome {
            Confirmation::Ack(None) | Confirmation::NotRequested => {
                self.metrics
                    .publisher_confirms
                    .with_label_values(&["ack"])
                    .inc();
                Sent::Confirmed
            }
            // An unroutable mandatory message comes back as an ack carrying the message.
            Confirmation::Ack(Some(_)) => {
                self.metrics
                    .publisher_confirms
                    .with_label_values(&["returned"])
                    .inc();
                Sent::Unroutable(message.routing_key.clone())
            }
            Confirmation::Nack(_) => {
                self.metrics
                    .publisher_confirms
                    .with_label_values(&["nack"])
                    .inc();
                Sent::Retry
            }
        })
    }
}
