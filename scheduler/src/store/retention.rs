//! Retention: rows older than their table's retention are deleted a small batch per statement,
//! so each delete holds few locks for a short time and never stalls the pipeline. Work under
//! way is never deleted: an execution only once finished, an event only once it has no
//! executions left (and was matched).

use chrono::{DateTime, Utc};

use herald_common::store::Store;

/// Rows one retention batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub events: u64,
    pub executions: u64,
    pub attempts: u64,
    /// Actions of one-off deliveries, gone with their execution.
    pub actions: u64,
}

/// Deletes up to `limit` attempts started before `before`.
pub async fn delete_old_attempts(
    store: &Store,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Deleted, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM attempts WHERE id IN (
           SELECT id FROM attempts WHERE started_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(store.pool())
    .await?;
    Ok(Deleted {
        attempts: done.rows_affected(),
        ..Deleted::default()
    })
}

/// Deletes up to `limit` executions created and finished before `before`, with their
/// attempts and, for a one-off delivery, its action.
pub async fn delete_old_executions(
    store: &Store,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Deleted, sqlx::Error> {
    let (executions, attempts, actions): (i64, i64, i64) = sqlx::query_as(
        "WITH gone AS (
           DELETE FROM executions WHERE id IN (
             SELECT id FROM executions
             WHERE created_at < $1 AND finished_at < $1
               AND status IN ('succeeded', 'failed', 'cancelled')
             LIMIT $2)
           RETURNING id, action_id),
         gone_attempts AS (
           DELETE FROM attempts a USING gone WHERE a.execution_id = gone.id RETURNING 1),
         gone_actions AS (
           DELETE FROM actions a USING gone
           WHERE a.id = gone.action_id AND a.one_off RETURNING 1)
         SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_attempts),
                (SELECT count(*) FROM gone_actions)",
    )
    .bind(before)
    .bind(limit)
    .fetch_one(store.pool())
    .await?;
    Ok(Deleted {
        executions: executions as u64,
        attempts: attempts as u64,
        actions: actions as u64,
        ..Deleted::default()
    })
}

/// Deletes up to `limit` events received before `before` that were matched and have no
/// executions left.
pub async fn delete_old_events(
    store: &Store,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Deleted, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM events WHERE (tenant_id, id) IN (
           SELECT tenant_id, id FROM events e
           WHERE received_at < $1 AND matched_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM executions x
                             WHERE x.tenant_id = e.tenant_id AND x.event_id = e.id)
           LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(store.pool())
    .await?;
    Ok(Deleted {
        events: done.rows_affected(),
        ..Deleted::default()
    })
}
