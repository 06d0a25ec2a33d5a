//! A connection that comes back: [`Link::connection`] hands out the live connection or makes
//! a new one (with backoff, declaring the topology first) when the old one has died.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::topology;
use crate::config::AmqpConfig;

/// One role's connection to the broker (a process keeps one for publishing, one for consuming).
pub struct Link {
    url: String,
    name: String,
    initial_backoff: Duration,
    max_backoff: Duration,
    current: Mutex<Option<Arc<Connection>>>,
    connected: AtomicBool,
    shutdown: CancellationToken,
}

/// The broker could not be reached before shutdown began.
#[derive(Debug, thiserror::Error)]
#[error("shutting down before the broker connection came back")]
pub struct ShuttingDown;

impl Link {
    pub fn new(
        config: &AmqpConfig,
        name: impl Into<String>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            url: config.url.clone(),
            name: name.into(),
            initial_backoff: Duration::from_millis(config.reconnect_initial_ms),
            max_backoff: Duration::from_millis(config.reconnect_max_ms),
            current: Mutex::new(None),
            connected: AtomicBool::new(false),
            shutdown,
        })
    }

    /// Whether the last known connection is up (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Marks the connection as suspect after an I/O error, so the next call reconnects.
    pub fn report_failure(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    /// The live connection, reconnecting (and redeclaring the topology) if needed. Waits, with
    /// backoff, until the broker answers or shutdown begins.
    pub async fn connection(&self) -> Result<Arc<Connection>, ShuttingDown> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref()
            && conn.status().connected()
        {
            self.connected.store(true, Ordering::Relaxed);
            return Ok(conn.clone());
        }
        self.connected.store(false, Ordering::Relaxed);
        let mut backoff = self.initial_backoff;
        let mut failures = 0u32;
        loop {
            if self.shutdown.is_cancelled() {
                return Err(ShuttingDown);
            }
            match self.open().await {
                Ok(conn) => {
                    if failures > 0 {
                        tracing::info!(link = %self.name, "broker connection restored");
                    }
                    *current = Some(conn.clone());
                    self.connected.store(true, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(error) => {
                    failures += 1;
                    // Log the first failure loudly and then every tenth, not every retry.
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::warn!(link = %self.name, %error, failures, "broker unreachable, retrying");
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(ShuttingDown),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn open(&self) -> lapin::Result<Arc<Connection>> {
        let properties =
            ConnectionProperties::default().with_connection_name(self.name.clone().into());
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&self.url, properties),
        )
        .await
        .map_err(|_| lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
        let channel = conn.create_channel().await?;
        topology::declare(&channel).await?;
        super::close_channel(&channel, "topology declared").await;
        Ok(Arc::new(conn))
    }

    /// Closes the connection at shutdown.
    pub async fn close(&self) {
        if let Some(conn) = self.current.lock().await.take()
            && conn.status().connected()
        {
            let _ = super::within_close(&self.name, conn.close(200, "shutdown".into())).await;
        }
        self.connected.store(false, Ordering::Relaxed);
    }
}
