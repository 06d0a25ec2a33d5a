//! Delayed jobs: durable until released. A release deletes due jobs inside a transaction that
//! commits only after the broker confirmed them (`SKIP LOCKED`, so two replicas never take the
//! same job, and a dead replica's transaction rolls back and gives its jobs back).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row, Transaction};

use super::Store;
use crate::messages::DelayedJob;

/// Due jobs taken by one release: deleted inside a transaction that holds their rows locked
/// until [`DueBatch::commit`]. Other replicas skip locked rows, so no job is taken twice; if
/// the releasing process dies or hangs, the transaction ends without committing and every
/// job is back for another replica.
pub struct DueBatch {
    tx: Transaction<'static, Postgres>,
    pub jobs: Vec<DelayedJob>,
}

impl DueBatch {
    /// Makes the deletion final: call once the broker has confirmed every job.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Store {
    /// Stores jobs; a job id seen before is ignored (hand-overs are at least once).
    pub async fn insert_delayed_jobs(&self, jobs: &[DelayedJob]) -> Result<(), sqlx::Error> {
        insert_delayed_jobs(&self.pool, jobs).await
    }

    /// Takes up to `limit` jobs due at `now`, earliest first, skipping jobs another release
    /// holds. The transaction gives up (and the jobs return) if it is left idle for `hold_for`,
    /// so a replica that hangs mid-batch cannot keep its jobs.
    pub async fn take_due_jobs(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        hold_for: std::time::Duration,
    ) -> Result<DueBatch, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('idle_in_transaction_session_timeout', $1, true)")
            .bind(hold_for.as_millis().max(1).to_string())
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "DELETE FROM delayed_jobs WHERE id IN (
               SELECT id FROM delayed_jobs WHERE due_at <= $1
               ORDER BY due_at LIMIT $2
               FOR UPDATE SKIP LOCKED)
             RETURNING id, due_at, exchange, routing_key, message_type, body, headers",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs: Vec<DelayedJob> = rows
            .iter()
            .map(|row| {
                let headers: serde_json::Value = row.try_get("headers")?;
                Ok(DelayedJob {
                    id: row.try_get("id")?,
                    due_at: row.try_get("due_at")?,
                    exchange: row.try_get("exchange")?,
                    routing_key: row.try_get("routing_key")?,
                    message_type: row.try_get("message_type")?,
                    body: row.try_get("body")?,
                    headers: serde_json::from_value::<BTreeMap<String, String>>(headers)
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        jobs.sort_by_key(|j| j.due_at);
        Ok(DueBatch { tx, jobs })
    }

    /// When the next job falls due (possibly one another release holds right now), so the
    /// release loop can sleep until then.
    /// The backlog for the operators' gauges: jobs held (counted up to `cap`, so that a huge
    /// table costs a bounded scan) and how overdue the earliest one is at `now`.
    pub async fn delayed_backlog(
        &self,
        now: DateTime<Utc>,
        cap: i64,
    ) -> Result<(i64, f64), sqlx::Error> {
        let (count, earliest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM delayed_jobs LIMIT $1) held),
                    (SELECT min(due_at) FROM delayed_jobs)",
        )
        .bind(cap)
        .fetch_one(&self.pool)
        .await?;
        let overdue = earliest
            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok((count, overdue))
    }

    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar("SELECT min(due_at) FROM delayed_jobs")
            .fetch_one(&self.pool)
            .await
    }
}

/// [`Store::insert_delayed_jobs`] on a connection or in a transaction.
pub async fn insert_delayed_jobs(
    db: impl sqlx::PgExecutor<'_>,
    jobs: &[DelayedJob],
) -> Result<(), sqlx::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let due: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.due_at).collect();
    let exchanges: Vec<&str> = jobs.iter().map(|j| j.exchange.as_str()).collect();
    let keys: Vec<&str> = jobs.iter().map(|j| j.routing_key.as_str()).collect();
    let types: Vec<&str> = jobs.iter().map(|j| j.message_type.as_str()).collect();
    let bodies: Vec<&[u8]> = jobs.iter().map(|j| j.body.as_slice()).collect();
    let headers: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| serde_json::to_value(&j.headers).unwrap_or_default())
        .collect();
    sqlx::query(
        "INSERT INTO delayed_jobs (id, due_at, exchange, routing_key, message_type, body, headers)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::bytea[], $7::jsonb[])
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&due)
    .bind(&exchanges)
    .bind(&keys)
    .bind(&types)
    .bind(&bodies)
    .bind(&headers)
    .execute(db)
    .await?;
    Ok(())
}
