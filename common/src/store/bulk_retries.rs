//! Retries by filter: recorded by the API, carried out by the scheduler one page per
//! transaction (the page's executions reopened with their jobs, and the task's cursor moved
//! on, together), so a bulk retry of any size holds one page in memory and resumes where it
//! stopped after a restart.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use super::Store;
use super::requeue::{ExecutionFilter, retry_page_in};
use crate::ids::{ActionId, BulkRetryId, ExecutionId, TenantId};
use crate::status::{BulkRetryStatus, ExecutionStatus};

/// A retry by filter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BulkRetry {
    pub id: BulkRetryId,
    pub status: BulkRetryStatus,
    pub filter: FilterView,
    /// Executions reopened so far.
    pub retried: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The filter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FilterView {
    pub status: ExecutionStatus,
    pub action_id: Option<ActionId>,
    pub event_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, execution_status, action_id, event_id, since, until, status, retried, \
    created_at, updated_at, finished_at";

fn from_row(row: &sqlx::postgres::PgRow) -> Result<BulkRetry, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(BulkRetry {
        id: row.try_get("id")?,
        status: BulkRetryStatus::parse(&status).unwrap_or(BulkRetryStatus::Done),
        filter: FilterView {
            status: execution_status(row)?,
            action_id: row.try_get("action_id")?,
            event_id: row.try_get("event_id")?,
            since: row.try_get("since")?,
            until: row.try_get("until")?,
        },
        retried: row.try_get("retried")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn execution_status(row: &sqlx::postgres::PgRow) -> Result<ExecutionStatus, sqlx::Error> {
    let text: String = row.try_get("execution_status")?;
    ExecutionStatus::parse(&text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown execution status {text:?}").into()))
}

/// One page of a bulk retry, done by [`Store::advance_bulk_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkRetryStep {
    pub id: BulkRetryId,
    pub retried: u64,
    pub finished: bool,
}

impl Store {
    /// Records a retry of every execution of the tenant matching `filter`; the scheduler
    /// carries it out.
    pub async fn create_bulk_retry(
        &self,
        tenant_id: TenantId,
        filter: &ExecutionFilter,
    ) -> Result<BulkRetry, sqlx::Error> {
        let row = sqlx::query(&format!(
            "INSERT INTO bulk_retries (id, tenant_id, execution_status, action_id, event_id, since, until, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'running')
             RETURNING {COLUMNS}"
        ))
        .bind(BulkRetryId::new())
        .bind(tenant_id)
        .bind(filter.status.unwrap_or(ExecutionStatus::Failed).as_str())
        .bind(filter.action_id)
        .bind(filter.event_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .fetch_one(&self.pool)
        .await?;
        from_row(&row)
    }

    pub async fn get_bulk_retry(
        &self,
        tenant_id: TenantId,
        id: BulkRetryId,
    ) -> Result<Option<BulkRetry>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM bulk_retries WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Stops a running bulk retry after the page under way (executions already reopened stay
    /// reopened). Returns the bulk retry as it now is.
    pub async fn cancel_bulk_retry(
        &self,
        tenant_id: TenantId,
        id: BulkRetryId,
    ) -> Result<Option<BulkRetry>, sqlx::Error> {
        sqlx::query(
            "UPDATE bulk_retries SET status = 'cancelled', updated_at = now(), finished_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'running'",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.get_bulk_retry(tenant_id, id).await
    }

    /// Carries out one page (up to `limit` executions) of the oldest running bulk retry that
    /// no other scheduler is working on: the executions are reopened and the cursor moved on
    /// in one transaction. `None` when no bulk retry is waiting.
    pub async fn advance_bulk_retry(
        &self,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<BulkRetryStep>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT id, tenant_id, execution_status, action_id, event_id, since, until, after_created_at,
                    after_id
             FROM bulk_retries WHERE status = 'running'
             ORDER BY created_at LIMIT 1
             FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: BulkRetryId = row.try_get("id")?;
        let tenant_id: TenantId = row.try_get("tenant_id")?;
        let filter = ExecutionFilter {
            status: Some(execution_status(&row)?),
            action_id: row.try_get("action_id")?,
            event_id: row.try_get("event_id")?,
            since: row.try_get("since")?,
            until: row.try_get("until")?,
        };
        let after_at: Option<DateTime<Utc>> = row.try_get("after_created_at")?;
        let after_id: Option<Uuid> = row.try_get("after_id")?;
        let after = after_at.zip(after_id.map(ExecutionId::from));
        let page = retry_page_in(&mut tx, tenant_id, &filter, after, limit, now).await?;
        let finished = page.next.is_none();
        sqlx::query(
            "UPDATE bulk_retries
             SET retried = retried + $2, after_created_at = $3, after_id = $4,
                 status = CASE WHEN $5 THEN 'done' ELSE status END,
                 finished_at = CASE WHEN $5 THEN now() ELSE NULL END, updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(page.retried as i64)
        .bind(page.next.map(|(at, _)| at))
        .bind(page.next.map(|(_, id)| id))
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(BulkRetryStep {
            id,
            retried: page.retried,
            finished,
        }))
    }
}
