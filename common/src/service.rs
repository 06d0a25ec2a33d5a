//! What every service starts with: metrics, the store, broker links, a publisher and the
//! operations server. Services build on [`Base`], and tests start services the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{CLOSE_WITHIN, Link, Publisher, within_close};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ServiceName};
use crate::metrics::Metrics;
use crate::ops::{self, Health};
use crate::store::Store;

/// The shared parts of a running service.
pub struct Base {
    pub service: ServiceName,
    pub config: Config,
    pub metrics: Metrics,
    pub store: Store,
    pub publish_link: Arc<Link>,
    pub consume_link: Arc<Link>,
    pub publisher: Arc<Publisher>,
    pub shutdown: CancellationToken,
    pub ops_addr: SocketAddr,
    pub tasks: TaskTracker,
    /// The time, as every part of the service reads it (the system's, unless a test gives
    /// another).
    pub clock: SharedClock,
}

impl Base {
    /// Connects to the database (migrating first when configured), prepares broker links and
    /// starts the operations server. The broker is connected lazily and reconnected forever,
    /// so a service starts even while the broker is still coming up (`/readyz` says so).
    pub async fn start(
        service: ServiceName,
        config: Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        config.validate_for(service)?;
        let metrics = Metrics::new(service.as_str());
        let store = Store::connect(&config.database)
            .await
            .context("connecting to the database")?
            .with_keys(config.security.key_ring());
        if config.database.migrate_on_start {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        let publish_link = Link::new(
            &config.amqp,
            format!("{}-publish", service.binary()),
            shutdown.clone(),
        );
        let consume_link = Link::new(
            &config.amqp,
            format!("{}-consume", service.binary()),
            shutdown.clone(),
        );
        let publisher = Arc::new(Publisher::new(
            publish_link.clone(),
            config.amqp.confirm_window,
            Duration::from_secs(30),
            metrics.clone(),
        ));
        let health = Health {
            links: vec![publish_link.clone(), consume_link.clone()],
            store: store.clone(),
            metrics: metrics.clone(),
        };
        let tasks = TaskTracker::new();
        let (ops_addr, ops_task) = ops::serve(config.ops.listen, health, shutdown.clone())
            .await
            .with_context(|| format!("binding the operations listener {}", config.ops.listen))?;
        tasks.spawn(async move {
            let _ = ops_task.await;
        });
        // Connect eagerly in the background so readiness turns green without waiting for work.
        for link in [publish_link.clone(), consume_link.clone()] {
            tasks.spawn(async move {
                let _ = link.connection().await;
            });
        }
        Ok(Self {
            service,
            config,
            metrics,
            store,
            publish_link,
            consume_link,
            publisher,
            shutdown,
            ops_addr,
            tasks,
            clock: Arc::new(SystemClock),
        })
    }

    /// Health for mounting the operations routes on another router (ingest's API).
    pub fn health(&self) -> Health {
        Health {
            links: vec![self.publish_link.clone(), self.consume_link.clone()],
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Hands the started service over: its addresses, and a handle that completes once every
    /// task has ended after shutdown and the connections are closed.
    pub fn into_running(self, api_addr: Option<SocketAddr>) -> Running {
        Running {
            ops_addr: self.ops_addr,
            api_addr,
            shutdown: self.shutdown.clone(),
            done: tokio::spawn(self.finish()),
        }
    }

    /// Waits for every task to end (after `shutdown` is cancelled), then closes connections.
    /// Each wait is bounded, so that a service always ends: the tasks get the grace period
    /// (their consumers give in-flight work that long) and a little more for their own
    /// closes, then each connection gets [`CLOSE_WITHIN`].
    pub async fn finish(self) {
        self.tasks.close();
        // Nothing is bounded before shutdown begins: this runs from the service's start.
        tokio::select! {
            () = self.tasks.wait() => {}
            () = self.shutdown.cancelled() => {}
        }
        let tasks_within = self.config.shutdown.grace() + 2 * CLOSE_WITHIN;
        if tokio::time::timeout(tasks_within, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                service = self.service.as_str(),
                within = ?tasks_within,
                "tasks still running at the end of shutdown; closing under them"
            );
        }
        self.publish_link.close().await;
        self.consume_link.close().await;
        within_close("database pool", self.store.pool().close()).await;
    }
}

/// A started service: its addresses and a handle to wait for its end.
pub struct Running {
    pub ops_addr: SocketAddr,
    /// The public API address (ingest only).
    pub api_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Asks the service to stop and waits until it has drained.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }
}
