//! Actions: stored as their validated spec, one row each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::Store;
use super::sealed::{action_context, open_json, seal_json};
use crate::action::{
    ActionError, ActionMatching, ActionMode, ActionSpec, HandlerSpec, Priority, ReadHandler,
    RetryPolicy,
};
use crate::condition::Condition;
use crate::crypto::{KeyRing, SealError};
use crate::ids::{ActionId, TenantId};

/// A stored action, with its handler read as `H` (see [`crate::action`]).
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord<H> {
    pub id: ActionId,
    pub tenant_id: TenantId,
    #[serde(flatten)]
    pub spec: ActionSpec<H>,
    pub disabled_reason: Option<String>,
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The action of one `POST /v1/deliveries`: it carries the destination and never matches.
    #[serde(skip)]
    pub one_off: bool,
}

impl<H> ActionRecord<H> {
    /// Whether this action can match events now.
    pub fn is_live(&self) -> bool {
        self.spec.matching.enabled && self.deleted_at.is_none() && !self.one_off
    }
}

pub const ACTION_COLUMNS: &str = "id, tenant_id, name, description, event_types, source, conditions, priority, \
     mode, handler, retry, rate_limit_per_s, max_concurrency, enabled, disabled_reason, revision, \
     created_at, updated_at, deleted_at, one_off, after_lower_priorities, requires_success";

fn decode_json<T: serde::de::DeserializeOwned>(
    row: &PgRow,
    column: &str,
) -> Result<T, sqlx::Error> {
    let value: serde_json::Value = row.try_get(column)?;
    serde_json::from_value(value).map_err(|e| column_error(column, e))
}

fn column_error(
    column: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    }
}

/// An action as stored, its handler opened with `keys` (left sealed and unread when `H` reads
/// none, as the matcher's [`crate::action::Unread`]).
pub fn action_from_row<H: ReadHandler>(
    row: &PgRow,
    keys: &KeyRing,
) -> Result<ActionRecord<H>, sqlx::Error> {
    let mode: String = row.try_get("mode")?;
    let conditions: Vec<Condition> = decode_json(row, "conditions")?;
    let handler = if H::READ {
        let stored: serde_json::Value = row.try_get("handler")?;
        let context = action_context(row.try_get("tenant_id")?, row.try_get("id")?);
        let plain = open_json(keys, stored, &context).map_err(|e| column_error("handler", e))?;
        H::read(plain).map_err(|e| column_error("handler", e))?
    } else {
        H::read(serde_json::Value::Null).map_err(|e| column_error("handler", e))?
    };
    let retry: RetryPolicy = decode_json(row, "retry")?;
    let rate_limit: Option<i32> = row.try_get("rate_limit_per_s")?;
    let max_concurrency: Option<i32> = row.try_get("max_concurrency")?;
    let matching = ActionMatching {
        name: row.try_get("name")?,
        event_types: row.try_get("event_types")?,
        source: row.try_get("source")?,
        conditions,
        priority: Priority(row.try_get("priority")?),
        mode: if mode == "sync" {
            ActionMode::Sync
        } else {
            ActionMode::Async
        },
        retry,
        enabled: row.try_get("enabled")?,
    };
    Ok(ActionRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        spec: ActionSpec {
            matching,
            description: row.try_get("description")?,
            handler,
            rate_limit_per_s: rate_limit.map(|v| v as u32),
            max_concurrency: max_concurrency.map(|v| v as u32),
            after_lower_priorities: row.try_get("after_lower_priorities")?,
            requires_success: row.try_get("requires_success")?,
        },
        disabled_reason: row.try_get("disabled_reason")?,
        revision: row.try_get("revision")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        one_off: row.try_get("one_off")?,
    })
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// An operator's change to an action's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Enable,
    Disable,
    /// Soft delete: kept for the audit trail and restorable, but never matched.
    Delete,
    Restore,
}

impl Lifecycle {
    fn assignments(self) -> &'static str {
        match self {
            Self::Enable => "enabled = true, disabled_reason = NULL",
            Self::Disable => "enabled = false, disabled_reason = 'disabled by an operator'",
            Self::Delete => "deleted_at = coalesce(deleted_at, now())",
            Self::Restore => "deleted_at = NULL",
        }
    }
}

/// Why an action could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ActionWriteError {
    #[error("an action named {0:?} already exists")]
    NameTaken(String),
    /// An update named the revision it was based on, and the action has moved on since.
    #[error("the action is at revision {0}")]
    RevisionMismatch(i64),
    /// An action of a set sent a masked credential that it does not have stored.
    #[error("the action named {name:?}: {error}")]
    Invalid { name: String, error: ActionError },
    /// No key to seal its handler with (`security.encryption_key`).
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Store {
    pub async fn create_action<H: HandlerSpec>(
        &self,
        tenant_id: TenantId,
        spec: &ActionSpec<H>,
    ) -> Result<ActionRecord<H>, ActionWriteError> {
        insert_action(&self.pool, self.keys(), tenant_id, spec, false).await
    }

    /// One action of one tenant, including soft-deleted ones.
    pub async fn get_action<H: ReadHandler>(
        &self,
        tenant_id: TenantId,
        id: ActionId,
    ) -> Result<Option<ActionRecord<H>>, sqlx::Error> {
        let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| action_from_row(row, self.keys()))
            .transpose()
    }

    /// Every live action of every tenant, for loading a matching engine.
    pub async fn live_actions<H: ReadHandler>(&self) -> Result<Vec<ActionRecord<H>>, sqlx::Error> {
        let sql = format!(
            "SELECT {ACTION_COLUMNS} FROM actions WHERE enabled AND deleted_at IS NULL AND NOT one_off"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| action_from_row(row, self.keys()))
            .collect()
    }

    /// Every action changed at or after `since`, live or not, for a resync.
    pub async fn actions_changed_since<H: ReadHandler>(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ActionRecord<H>>, sqlx::Error> {
        let sql = format!("SELECT {ACTION_COLUMNS} FROM actions WHERE updated_at >= $1");
        let rows = sqlx::query(&sql).bind(since).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| action_from_row(row, self.keys()))
            .collect()
    }

    /// Applies `change` to one of the tenant's actions (not a delivery's) and returns it as it
    /// now is; matchers hear of it at once (the table's trigger).
    pub async fn change_action<H: ReadHandler>(
        &self,
        tenant_id: TenantId,
        id: ActionId,
        change: Lifecycle,
    ) -> Result<Option<ActionRecord<H>>, sqlx::Error> {
        let sql = format!(
            "UPDATE actions SET {}, revision = revision + 1, updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND NOT one_off
             RETURNING {ACTION_COLUMNS}",
            change.assignments()
        );
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| action_from_row(row, self.keys()))
            .transpose()
    }

    /// Replaces the spec of one of the tenant's actions (a soft-deleted one too: it stays
    /// deleted) and returns it as it now is. With `expected_revision`, only if the action is
    /// still at that revision. `None`: no such action.
    pub async fn update_action<H: HandlerSpec>(
        &self,
        tenant_id: TenantId,
        id: ActionId,
        spec: &ActionSpec<H>,
        expected_revision: Option<i64>,
    ) -> Result<Option<ActionRecord<H>>, ActionWriteError> {
        let mut tx = self.pool.begin().await?;
        let current: Option<i64> = sqlx::query_scalar(
            "SELECT revision FROM actions WHERE tenant_id = $1 AND id = $2 AND NOT one_off
             FOR UPDATE",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(revision) = current else {
            return Ok(None);
        };
        if expected_revision.is_some_and(|expected| expected != revision) {
            return Err(ActionWriteError::RevisionMismatch(revision));
        }
        let record = rewrite_action(&mut *tx, self.keys(), tenant_id, id, spec).await?;
        tx.commit().await?;
        Ok(Some(record))
    }

    /// Disables an action, recording why (for example a 410 Gone from its endpoint).
    pub async fn disable_action(
        &self,
        tenant_id: TenantId,
        id: ActionId,
        reason: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE actions SET enabled = false, disabled_reason = $3, revision = revision + 1,
               updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND enabled",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Writes `spec` over an existing action; an operator's earlier disable reason goes with it
/// when the new spec enables the action.
pub async fn rewrite_action<H: HandlerSpec>(
    db: impl sqlx::PgExecutor<'_>,
    keys: &KeyRing,
    tenant_id: TenantId,
    id: ActionId,
    spec: &ActionSpec<H>,
) -> Result<ActionRecord<H>, ActionWriteError> {
    let sql = format!(
        "UPDATE actions SET name = $3, description = $4, event_types = $5, source = $6,
           conditions = $7, priority = $8, mode = $9, handler_type = $10, handler = $11,
           retry = $12, rate_limit_per_s = $13, max_concurrency = $14, enabled = $15,
           after_lower_priorities = $16, requires_success = $17,
           disabled_reason = CASE WHEN $15 THEN NULL ELSE disabled_reason END,
           revision = revision + 1, updated_at = now()
         WHERE tenant_id = $1 AND id = $2
         RETURNING {ACTION_COLUMNS}"
    );
    let handler = sealed_handler(keys, tenant_id, id, &spec.handler)?;
    let row = bind_spec(sqlx::query(&sql).bind(tenant_id).bind(id), spec, handler)
        .fetch_one(db)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                ActionWriteError::NameTaken(spec.matching.name.clone())
            }
            _ => ActionWriteError::Database(error),
        })?;
    Ok(action_from_row(&row, keys)?)
}

/// The handler as stored: its JSON sealed for the action's row, since it holds signing
/// secrets and credentials.
fn sealed_handler<H: HandlerSpec>(
    keys: &KeyRing,
    tenant_id: TenantId,
    id: ActionId,
    handler: &H,
) -> Result<serde_json::Value, SealError> {
    seal_json(keys, &json(handler), &action_context(tenant_id.0, id.0))
}

/// Binds a spec's columns, in the order both writes name them (`$3` to `$15`), with its
/// handler as sealed.
fn bind_spec<'q, H: HandlerSpec>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    spec: &'q ActionSpec<H>,
    handler: serde_json::Value,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let matching = &spec.matching;
    query
        .bind(&matching.name)
        .bind(&spec.description)
        .bind(&matching.event_types)
        .bind(&matching.source)
        .bind(json(&matching.conditions))
        .bind(matching.priority.0)
        .bind(mode_name(matching.mode))
        .bind(spec.handler.kind())
        .bind(handler)
        .bind(json(&matching.retry))
        .bind(spec.rate_limit_per_s.map(|v| v as i32))
        .bind(spec.max_concurrency.map(|v| v as i32))
        .bind(matching.enabled)
        .bind(spec.after_lower_priorities)
        .bind(spec.requires_success)
}

fn mode_name(mode: ActionMode) -> &'static str {
    match mode {
        ActionMode::Async => "async",
        ActionMode::Sync => "sync",
    }
}

/// Stores a new action (`one_off`: the action of one delivery, see [`ActionRecord::one_off`]).
pub async fn insert_action<H: HandlerSpec>(
    db: impl sqlx::PgExecutor<'_>,
    keys: &KeyRing,
    tenant_id: TenantId,
    spec: &ActionSpec<H>,
    one_off: bool,
) -> Result<ActionRecord<H>, ActionWriteError> {
    let sql = format!(
        "INSERT INTO actions (id, tenant_id, name, description, event_types, source, conditions,
           priority, mode, handler_type, handler, retry, rate_limit_per_s, max_concurrency, enabled,
           after_lower_priorities, requires_success, one_off)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (tenant_id, name) DO NOTHING
         RETURNING {ACTION_COLUMNS}"
    );
    let id = ActionId::new();
    let handler = sealed_handler(keys, tenant_id, id, &spec.handler)?;
    let row = bind_spec(sqlx::query(&sql).bind(id).bind(tenant_id), spec, handler)
        .bind(one_off)
        .fetch_optional(db)
        .await?;
    match row {
        Some(row) => Ok(action_from_row(&row, keys)?),
        None => Err(ActionWriteError::NameTaken(spec.matching.name.clone())),
    }
}
