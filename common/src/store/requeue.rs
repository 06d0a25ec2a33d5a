//! Sending executions again: an operator's retry (of one execution, or page by page of a
//! filter), the scheduler's recovery of stuck work, and cancelling. A retry or recovery reopens
//! executions and stores their next jobs as delayed jobs due now, in one transaction; the
//! scheduler's release (publish with confirms, then commit) carries them to the executors. So
//! nothing is reopened without its job, and no job exists for an execution left as it was.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::Store;
use super::delayed::insert_delayed_jobs;
use super::events::{EVENT_COLUMNS, event_from_row};
use super::executions::ExecutionRecord;
use crate::ids::{ActionId, ExecutionId, TenantId};
use crate::messages::{DelayedJob, ExecutionJob, Lane};
use crate::status::ExecutionStatus;

/// Which executions a listing shows or a retry by filter takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFilter {
    /// Any status when listing; a retry takes `failed` executions unless told otherwise.
    pub status: Option<ExecutionStatus>,
    pub action_id: Option<ActionId>,
    pub event_id: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// What a retry of one execution found.
#[derive(Debug, Clone)]
pub enum RetryOne {
    /// Reopened with one more attempt, sent now.
    Retried(ExecutionRecord),
    /// Still under way: there is nothing to retry.
    NotFinished(ExecutionStatus),
    NotFound,
}

/// What a cancel found.
#[derive(Debug, Clone)]
pub enum CancelOne {
    Cancelled(ExecutionRecord),
    AlreadyFinished(ExecutionStatus),
    NotFound,
}

/// The last execution a retry by filter has passed, in creation order.
pub type Cursor = (DateTime<Utc>, ExecutionId);

/// One page of a retry by filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetriedPage {
    pub retried: u64,
    /// Where the next page starts; `None` when the filter is exhausted.
    pub next: Option<Cursor>,
}

/// Why recovery re-sends an execution (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stuck {
    /// `processing` past its lease: the executor making the attempt died or hung.
    LeaseExpired,
    /// Waiting for an attempt long past its time with no job for it at the scheduler.
    Overdue,
}

impl Stuck {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeaseExpired => "lease_expired",
            Self::Overdue => "overdue",
        }
    }
}

/// An execution just reopened, and the attempt its new job makes.
struct Reopened {
    id: Uuid,
    tenant_id: Uuid,
    action_id: Uuid,
    event_id: String,
    attempt: i32,
}

fn reopened_from_rows(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Reopened>, sqlx::Error> {
    rows.iter()
        .map(|row| {
            Ok(Reopened {
                id: row.try_get("id")?,
                tenant_id: row.try_get("tenant_id")?,
                action_id: row.try_get("action_id")?,
                event_id: row.try_get("event_id")?,
                attempt: row.try_get("attempt")?,
            })
        })
        .collect()
}

const REOPENED: &str = "e.id, e.tenant_id, e.action_id, e.event_id";

/// Executions `processing` past their lease ($1 now, $2 the new lease, $4 the limit).
const RECOVER_LEASE_EXPIRED: &str = "
    UPDATE executions e SET lease_until = $2, updated_at = now()
    WHERE e.id IN (
      SELECT id FROM executions
      WHERE status = 'processing' AND lease_until < $1
      ORDER BY lease_until LIMIT $4
      FOR UPDATE SKIP LOCKED)
    RETURNING {REOPENED}, e.attempts AS attempt";

/// The condition that no job of execution `w` waits at the scheduler (job ids start with the
/// execution's uuid and a colon; they compare bytewise).
const NO_JOB_WAITING: &str = "NOT EXISTS (
      SELECT 1 FROM delayed_jobs d
      WHERE d.id >= (w.id::text || ':') COLLATE \"C\" AND d.id < (w.id::text || ';') COLLATE \"C\")";

/// Retries due before $3 with no job ($1 now, $4 the limit); the retry is due again now.
const RECOVER_OVERDUE_RETRY: &str = "
    UPDATE executions e SET next_attempt_at = $1, updated_at = now()
    WHERE e.id IN (
      SELECT id FROM executions w
      WHERE status = 'retry_scheduled' AND next_attempt_at < $3 AND {NO_JOB_WAITING}
      ORDER BY next_attempt_at LIMIT $4
      FOR UPDATE SKIP LOCKED)
    RETURNING {REOPENED}, e.attempts + 1 AS attempt";

/// First attempts recorded (and last re-sent) before $3 with no job. Pending executions are
/// not indexed by time on their own (that would cost every new execution an index entry):
/// they are found per tenant through `executions_tenant_status`.
const RECOVER_OVERDUE_FIRST: &str = "
    UPDATE executions e SET updated_at = $1
    WHERE e.id IN (
      SELECT w.id FROM tenants t
      CROSS JOIN LATERAL (
        SELECT id FROM executions x
        WHERE x.tenant_id = t.id AND x.status = 'pending' AND x.created_at < $3
          AND x.updated_at < $3
        ORDER BY x.created_at LIMIT $4) w
      WHERE {NO_JOB_WAITING}
      LIMIT $4)
      AND e.status = 'pending' AND e.updated_at < $3
    RETURNING {REOPENED}, e.attempts + 1 AS attempt";

/// Terminal statuses, which an operator may retry.
const FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

/// Stores one job due `now` for each reopened execution, tagged `why`.
/// An execution whose event is gone (retention) cannot be sent: it is cancelled instead.
async fn store_jobs(
    db: &mut PgConnection,
    reopened: &[Reopened],
    why: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if reopened.is_empty() {
        return Ok(0);
    }
    let tenants: Vec<Uuid> = reopened.iter().map(|r| r.tenant_id).collect();
    let event_ids: Vec<&str> = reopened.iter().map(|r| r.event_id.as_str()).collect();
    let rows = sqlx::query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))"
    ))
    .bind(&tenants)
    .bind(&event_ids)
    .fetch_all(&mut *db)
    .await?;
    let mut events = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        if let Some(event) = event_from_row(row)? {
            events.insert(
                (event.tenant_id.as_uuid(), event.id.as_str().to_owned()),
                event,
            );
        }
    }
    let mut jobs = Vec::with_capacity(reopened.len());
    let mut orphans = Vec::new();
    for r in reopened {
        let Some(event) = events.get(&(r.tenant_id, r.event_id.clone())) else {
            orphans.push(r.id);
            continue;
        };
        let job = ExecutionJob {
            step: None,
            execution_id: r.id.into(),
            tenant_id: r.tenant_id.into(),
            action_id: r.action_id.into(),
            attempt: r.attempt.max(1) as u32,
            event: event.clone(),
        };
        jobs.push(DelayedJob::attempt(job, Lane::Retry, Some(why), now));
    }
    insert_delayed_jobs(&mut *db, &jobs).await?;
    if !orphans.is_empty() {
        sqlx::query(
            "UPDATE executions SET status = 'cancelled', last_error = 'event no longer stored',
               next_attempt_at = NULL, lease_until = NULL, updated_at = now(), finished_at = now()
             WHERE id = ANY($1)",
        )
        .bind(&orphans)
        .execute(&mut *db)
        .await?;
    }
    Ok(jobs.len() as u64)
}

/// Reopens the finished executions among `ids` (only those in `status`, if given) for one
/// more attempt, due `now`, and stores their jobs; returns how many.
async fn reopen_for_retry(
    db: &mut PgConnection,
    tenant_id: TenantId,
    ids: &[Uuid],
    status: Option<ExecutionStatus>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "UPDATE executions e
         SET status = 'retry_scheduled', max_attempts = e.attempts + 1, next_attempt_at = $4,
             lease_until = NULL, finished_at = NULL, updated_at = now()
         WHERE e.tenant_id = $1 AND e.id = ANY($2) AND e.status IN {FINISHED}
           AND ($3::text IS NULL OR e.status = $3)
         RETURNING {REOPENED}, e.attempts + 1 AS attempt"
    ))
    .bind(tenant_id)
    .bind(ids)
    .bind(status.map(ExecutionStatus::as_str))
    .bind(now)
    .fetch_all(&mut *db)
    .await?;
    store_jobs(db, &reopened_from_rows(&rows)?, "retry", now).await
}

/// [`Store::retry_page`] inside the caller's transaction.
pub(super) async fn retry_page_in(
    db: &mut PgConnection,
    tenant_id: TenantId,
    filter: &ExecutionFilter,
    after: Option<Cursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<RetriedPage, sqlx::Error> {
    let status = filter.status.unwrap_or(ExecutionStatus::Failed);
    let page: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, created_at FROM executions
         WHERE tenant_id = $1 AND status = $2
           AND ($3::uuid IS NULL OR action_id = $3)
           AND ($4::text IS NULL OR event_id = $4)
           AND created_at >= coalesce($5, '-infinity') AND created_at < coalesce($6, 'infinity')
           AND created_at >= coalesce($7, '-infinity')
           AND (created_at, id) > (coalesce($7, '-infinity'), coalesce($8, '00000000-0000-0000-0000-000000000000'::uuid))
         ORDER BY created_at, id
         LIMIT $9",
    )
    .bind(tenant_id)
    .bind(status.as_str())
    .bind(filter.action_id)
    .bind(filter.event_id.as_deref())
    .bind(filter.since)
    .bind(filter.until)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(&mut *db)
    .await?;
    let ids: Vec<Uuid> = page.iter().map(|(id, _)| *id).collect();
    // The status is checked again: a row may have moved on since it was read.
    let retried = reopen_for_retry(db, tenant_id, &ids, Some(status), now).await?;
    let next = if (page.len() as i64) < limit {
        None
    } else {
        page.last().map(|(id, at)| (*at, ExecutionId::from(*id)))
    };
    Ok(RetriedPage { retried, next })
}

impl Store {
    /// Retries one finished execution: one more attempt, sent now.
    pub async fn retry_execution(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
        now: DateTime<Utc>,
    ) -> Result<RetryOne, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let retried = reopen_for_retry(&mut tx, tenant_id, &[id.as_uuid()], None, now).await?;
        tx.commit().await?;
        let Some(execution) = self.get_execution(tenant_id, id).await? else {
            return Ok(RetryOne::NotFound);
        };
        Ok(if retried == 0 {
            RetryOne::NotFinished(execution.status)
        } else {
            RetryOne::Retried(execution)
        })
    }

    /// Retries the next page of up to `limit` executions matching `filter` after `after`, in
    /// creation order: each gets one more attempt, sent now. Only this page is ever in memory.
    pub async fn retry_page(
        &self,
        tenant_id: TenantId,
        filter: &ExecutionFilter,
        after: Option<Cursor>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<RetriedPage, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let page = retry_page_in(&mut tx, tenant_id, filter, after, limit, now).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// Re-sends up to `limit` executions stuck for `reason`, oldest first, and returns how
    /// many. `LeaseExpired`: `processing` with a lease ended before `now`; the same attempt is
    /// sent again under a new lease until `lease_until`. `Overdue`: waiting for an attempt due
    /// before `overdue_before` (a retry's time; a first attempt's creation) with no job for it
    /// at the scheduler; that attempt is sent. A re-sent execution is not taken again until
    /// it is stuck anew, and two replicas never both take one (the guard is checked again on
    /// the locked row).
    pub async fn recover_stuck(
        &self,
        reason: Stuck,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        overdue_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, sqlx::Error> {
        let statements: &[&str] = match reason {
            Stuck::LeaseExpired => &[RECOVER_LEASE_EXPIRED],
            Stuck::Overdue => &[RECOVER_OVERDUE_RETRY, RECOVER_OVERDUE_FIRST],
        };
        let why = format!("recovered:{}", now.timestamp_millis());
        let mut sent = 0;
        for statement in statements {
            let mut tx = self.pool.begin().await?;
            let sql = statement
                .replace("{REOPENED}", REOPENED)
                .replace("{NO_JOB_WAITING}", NO_JOB_WAITING);
            let rows = sqlx::query(&sql)
                .bind(now)
                .bind(lease_until)
                .bind(overdue_before)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            sent += store_jobs(&mut tx, &reopened_from_rows(&rows)?, &why, now).await?;
            tx.commit().await?;
        }
        Ok(sent)
    }

    /// Cancels one execution that has not finished, and drops its jobs waiting at the
    /// scheduler (an attempt already under way still completes and is recorded, but moves
    /// nothing).
    pub async fn cancel_by_operator(
        &self,
        tenant_id: TenantId,
        id: ExecutionId,
    ) -> Result<CancelOne, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let cancelled = sqlx::query(
            "UPDATE executions SET status = 'cancelled', last_error = 'cancelled by an operator',
               lease_until = NULL, next_attempt_at = NULL, updated_at = now(), finished_at = now()
             WHERE tenant_id = $1 AND id = $2
               AND status IN ('pending', 'processing', 'retry_scheduled')",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if cancelled {
            let prefix = id.as_uuid().to_string();
            sqlx::query(
                "DELETE FROM delayed_jobs
                 WHERE id >= ($1 || ':') COLLATE \"C\" AND id < ($1 || ';') COLLATE \"C\"",
            )
            .bind(&prefix)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let Some(execution) = self.get_execution(tenant_id, id).await? else {
            return Ok(CancelOne::NotFound);
        };
        Ok(if cancelled {
            CancelOne::Cancelled(execution)
        } else {
            CancelOne::AlreadyFinished(execution.status)
        })
    }
}
