//! Retention: deletes expired attempts, executions and events a small batch at a time, with a
//! pause between batches, so the pipeline's own writes never wait long behind it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_common::config::RetentionConfig;
use herald_common::metrics::Metrics;
use herald_common::store::Store;

use crate::store::retention::{self, Deleted};

use herald_common::clock::Clock;

/// Pause between two batches.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

pub struct Retention<C: Clock> {
    pub store: Store,
    pub metrics: Metrics,
    pub clock: C,
    pub config: RetentionConfig,
}

#[derive(Clone, Copy)]
enum Table {
    Attempts,
    Executions,
    Events,
}

impl<C: Clock> Retention<C> {
    /// Deletes everything expired now; returns the rows deleted.
    pub async fn run_once(&self) -> anyhow::Result<Deleted> {
        let mut total = Deleted::default();
        // Executions before events: an event goes only once its executions are gone.
        for (table, days) in [
            (Table::Attempts, self.config.attempts_days),
            (Table::Executions, self.config.executions_days),
            (Table::Events, self.config.events_days),
        ] {
            if days == 0 {
                continue;
            }
            let before = self.clock.now() - chrono::Duration::days(i64::from(days));
            loop {
                let deleted = self.delete_batch(table, before).await?;
                for (name, rows) in [
                    ("attempts", deleted.attempts),
                    ("executions", deleted.executions),
                    ("events", deleted.events),
                    ("actions", deleted.actions),
                ] {
                    if rows > 0 {
                        self.metrics
                            .retention_deleted
                            .with_label_values(&[name])
                            .inc_by(rows);
                    }
                }
                total.attempts += deleted.attempts;
                total.executions += deleted.executions;
                total.events += deleted.events;
                total.actions += deleted.actions;
                let main = match table {
                    Table::Attempts => deleted.attempts,
                    Table::Executions => deleted.executions,
                    Table::Events => deleted.events,
                };
                if (main as i64) < self.config.batch_size {
                    break;
                }
                tokio::time::sleep(BETWEEN_BATCHES).await;
            }
        }
        Ok(total)
    }

    async fn delete_batch(&self, table: Table, before: DateTime<Utc>) -> anyhow::Result<Deleted> {
        let limit = self.config.batch_size;
        Ok(match table {
            Table::Attempts => retention::delete_old_attempts(&self.store, before, limit).await?,
            Table::Executions => {
                retention::delete_old_executions(&self.store, before, limit).await?
            }
            Table::Events => retention::delete_old_events(&self.store, before, limit).await?,
        })
    }
}
