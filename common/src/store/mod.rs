//! PostgreSQL: the durable record of tenants, actions, events, executions, attempts, circuit
//! state and delayed jobs, as more than one service reads or writes it (what one service alone
//! uses is in its own `store` module). Every query on tenant data takes the tenant id and
//! filters by it.

mod actions;
mod bulk_retries;
mod circuits;
mod delayed;
mod events;
mod executions;
mod isolate;
mod requeue;
mod sealed;
mod secrets;
mod sequence;
mod workflow_advance;
mod workflows;

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;
use crate::crypto::KeyRing;

pub use actions::{
    ACTION_COLUMNS, ActionRecord, ActionWriteError, Lifecycle, action_from_row, insert_action,
    rewrite_action,
};
pub use bulk_retries::{BulkRetry, BulkRetryStep, FilterView};
pub use circuits::{CircuitEntry, EndpointOutcomes};
pub use delayed::{DueBatch, insert_delayed_jobs};
pub use events::{
    InsertedEvent, STORED_EVENT_COLUMNS, StoredEvent, insert_matched_event, original_event_id,
    stored_event_from_row,
};
pub use executions::{
    AttemptRecord, AttemptView, Claim, ClaimRequest, ExecutionRecord, NewExecution, Outcome,
    SELECT_EXECUTION, StoredExecution, execution_from_row,
};
pub use isolate::{WriteFailure, is_data_error, is_data_error_in, write_isolated};
pub use requeue::{CancelOne, Cursor, ExecutionFilter, RetriedPage, RetryOne, Stuck};
pub use sealed::{Reseal, Resealed, open_text, provider_context, seal_text};
pub use secrets::{MAX_SECRET_LEN, SecretInfo, SecretValues, SecretWriteError, valid_secret_name};
pub use sequence::Earlier;
pub use workflow_advance::Advance;
pub use workflows::{
    Advanced, ClaimStep, StepAttempt, StepAttemptView, StepClaim, StepEnd, StepRecord, StepView,
};

/// Text from outside (a response body, an error's words) as PostgreSQL's `text` can hold
/// it: U+0000, which it refuses, is stored as U+FFFD, as invalid UTF-8 already is.
fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A handle on the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// What sealed values at rest are sealed and opened with (see [`crate::crypto`]).
    keys: Arc<KeyRing>,
}

impl Store {
    /// Connects a pool. Fails fast when the database is unreachable.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = config
            .url
            .parse::<PgConnectOptions>()?
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            .connect_with(options)
            .await?;
        Ok(Self::from_pool(pool))
    }

    /// A store on `pool` without keys: it reads and writes nothing sealed.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            keys: Arc::new(KeyRing::default()),
        }
    }

    /// This store with `keys` to seal and open values at rest.
    pub fn with_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Arc::new(keys);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Applies pending migrations, then (with a key) seals what was stored before sealing
    /// began; safe to run concurrently from several replicas (sqlx takes an advisory lock, and
    /// sealing locks each row it rewrites).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await?;
        if self.keys.can_seal() {
            let sealed = self.reseal(Reseal::Plain).await?;
            if sealed != Resealed::default() {
                tracing::info!(?sealed, "sealed values stored before sealing began");
            }
        }
        Ok(())
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> bool {
        let query = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), query).await,
            Ok(Ok(_))
        )
    }

    /// Pool occupancy, for metrics: (connections open, connections idle).
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }
}
