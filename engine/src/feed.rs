//! Keeping an engine in step with the actions table, in every replica that holds one.
//!
//! A trigger announces each change on the `herald_actions` channel (migration 0002). The feed
//! listens before it loads, so no change falls between the load and the first notification;
//! applies each announced change by reading the action back; reloads everything when its
//! listening connection was lost (notifications may have been missed); and, as a safety net,
//! re-reads every action changed in the last two resync intervals. It also passes the replica's
//! barriers (see [`crate::barrier`]), which share the channel.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use herald_common::action::Unread;
use herald_common::clock::SharedClock;
use herald_common::ids::{ActionId, TenantId};
use herald_common::metrics::Metrics;
use herald_common::store::Store;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::barrier::{Barrier, Seen};
use crate::{Engine, MatchSpec};

/// The notification channel the actions trigger writes to.
pub const CHANNEL: &str = "herald_actions";

/// An engine for a service: loaded with every live action before this returns, and kept
/// current by a feed task running among the service's tasks until shutdown; with the barrier
/// that waits for the feed to catch up with what has been committed.
pub async fn live_engine(
    base: &herald_common::service::Base,
) -> anyhow::Result<(Arc<Engine>, Arc<Barrier>)> {
    let engine = Arc::new(Engine::new());
    let feed = ActionFeed::new(
        engine.clone(),
        base.store.clone(),
        base.metrics.clone(),
        base.clock.clone(),
        Duration::from_secs(base.config.matcher.resync_interval_s),
    );
    let barrier = feed.barrier.clone();
    let follow = feed.start(base.shutdown.clone()).await?;
    base.tasks.spawn(follow);
    Ok((engine, barrier))
}

pub struct ActionFeed {
    engine: Arc<Engine>,
    store: Store,
    metrics: Metrics,
    clock: SharedClock,
    resync: Duration,
    /// This replica's barriers, which travel on the same channel.
    pub barrier: Arc<Barrier>,
}

impl ActionFeed {
    pub fn new(
        engine: Arc<Engine>,
        store: Store,
        metrics: Metrics,
        clock: SharedClock,
        resync: Duration,
    ) -> Self {
        Self {
            engine,
            metrics,
            barrier: Arc::new(Barrier::new(store.clone())),
            store,
            clock,
            resync,
        }
    }

    /// Listens, loads every live action, and returns a task that follows changes until
    /// `shutdown`. The engine is complete when this returns.
    pub async fn start(
        self,
        shutdown: CancellationToken,
    ) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
        let mut listener = PgListener::connect_with(self.store.pool())
            .await
            .context("connecting the action change listener")?;
        listener
            .listen(CHANNEL)
            .await
            .context("listening for action changes")?;
        self.reload().await?;
        Ok(async move { self.follow(listener, shutdown).await })
    }

    async fn reload(&self) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let actions = self
            .store
            .live_actions::<Unread>()
            .await
            .context("loading actions")?;
        // Building the index is CPU work on every core: keep it off the async workers.
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let actions: Vec<_> = actions
                .into_iter()
                .map(|a| (a.tenant_id, a.id, MatchSpec::from(a.spec.matching)))
                .collect();
            engine.load(&actions);
        })
        .await
        .context("building the index")?;
        self.metrics.actions_loaded.set(self.engine.len() as i64);
        self.metrics
            .action_changes
            .with_label_values(&["reload"])
            .inc();
        tracing::info!(
            actions = self.engine.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "actions loaded"
        );
        Ok(())
    }

    async fn apply(&self, tenant: TenantId, id: ActionId, via: &str) -> anyhow::Result<()> {
        match self.store.get_action::<Unread>(tenant, id).await? {
            Some(record) => self.engine.upsert(&record),
            None => self.engine.remove(tenant, id),
        }
        self.metrics.actions_loaded.set(self.engine.len() as i64);
        self.metrics.action_changes.with_label_values(&[via]).inc();
        Ok(())
    }

    async fn follow(self, mut listener: PgListener, shutdown: CancellationToken) {
        let mut resync = tokio::time::interval(self.resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let mut last_resync = self.clock.now();
        let mut needs_reload = false;
        loop {
            if needs_reload {
                // Notifications may have been lost, barriers among them: what the reload reads
                // covers every barrier sent before it started.
                let covered = self.barrier.last_sent();
                match self.reload().await {
                    Ok(()) => {
                        needs_reload = false;
                        self.barrier.passed(covered);
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "action reload failed");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = resync.tick() => {
                    let window = chrono::Duration::from_std(self.resync * 2).unwrap_or_default();
                    let since = last_resync - window;
                    last_resync = self.clock.now();
                    if let Err(error) = self.resync_since(since).await {
                        tracing::warn!(error = format!("{error:#}"), "action resync failed");
                    }
                }
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        let payload = notification.payload();
                        if let Some(seen) = self.barrier.read(payload) {
                            if let Seen::Mine(token) = seen {
                                self.barrier.passed(token);
                            }
                            continue;
                        }
                        let Some((tenant, id)) = parse_payload(payload) else {
                            tracing::warn!(payload, "unreadable action change");
                            continue;
                        };
                        if let Err(error) = self.apply(tenant, id, "notify").await {
                            tracing::warn!(error = format!("{error:#}"), "applying an action change failed; reloading");
                            needs_reload = true;
                        }
                    }
                    // The connection dropped; sqlx reconnects on the next call, and whatever
                    // was announced meanwhile is lost, so everything is read again.
                    Ok(None) => needs_reload = true,
                    Err(error) => {
                        tracing::warn!(%error, "action change listener failed; reloading");
                        needs_reload = true;
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                },
            }
        }
    }

    async fn resync_since(&self, since: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        let changed = self.store.actions_changed_since::<Unread>(since).await?;
        for record in &changed {
            self.engine.upsert(record);
        }
        self.metrics.actions_loaded.set(self.engine.len() as i64);
        self.metrics
            .action_changes
            .with_label_values(&["resync"])
            .inc_by(changed.len() as u64);
        Ok(())
    }
}

/// `<tenant id>:<action id>`, as the trigger writes it (plain UUIDs).
fn parse_payload(payload: &str) -> Option<(TenantId, ActionId)> {
    let (tenant, id) = payload.split_once(':')?;
    let tenant = uuid::Uuid::parse_str(tenant).ok()?;
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some((TenantId::from(tenant), ActionId::from(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_two_uuids() {
        let tenant = uuid::Uuid::now_v7();
        let id = uuid::Uuid::now_v7();
        let parsed = parse_payload(&format!("{tenant}:{id}")).unwrap();
        assert_eq!(parsed, (TenantId::from(tenant), ActionId::from(id)));
        assert!(parse_payload("nonsense").is_none());
        assert!(parse_payload("a:b").is_none());
    }
}
