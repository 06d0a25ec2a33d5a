//! Delayed jobs: durable until released. Replicas claim due jobs with `SKIP LOCKED` and a claim
//! expiry, so two replicas never take the same job and a dead replica's claim runs out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Store;
use crate::messages::DelayedJob;

/// A due job taken by this replica, to publish and then delete.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: DelayedJob,
}

impl Store {
    /// Stores jobs; a job id seen before is ignored (hand-overs are at least once).
    pub async fn insert_delayed_jobs(&self, jobs: &[DelayedJob]) -> Result<(), sqlx::Error> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` jobs due at `now`, oldest first, for `claimer` until `claim_until`.
    pub async fn claim_due_jobs(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        claimer: &str,
        claim_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, sqlx::Error> {
        let rows = sqlx::query(
            "WITH due AS (
               SELECT id FROM delayed_jobs
               WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1)
               ORDER BY due_at
               LIMIT $2
               FOR UPDATE SKIP LOCKED)
             UPDATE delayed_jobs d SET claimed_by = $3, claimed_until = $4
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.due_at, d.exchange, d.routing_key, d.message_type, d.body, d.headers",
        )
        .bind(now)
        .bind(limit)
        .bind(claimer)
        .bind(claim_until)
        .fetch_all(&self.pool)
        .await?;
        let mut jobs: Vec<ClaimedJob> = rows
            .iter()
            .map(|row| {
                let headers: serde_json::Value = row.try_get("headers")?;
                Ok(ClaimedJob {
                    job: DelayedJob {
                        id: row.try_get("id")?,
                        due_at: row.try_get("due_at")?,
                        exchange: row.try_get("exchange")?,
                        routing_key: row.try_get("routing_key")?,
                        message_type: row.try_get("message_type")?,
                        body: row.try_get("body")?,
                        headers: serde_json::from_value::<BTreeMap<String, String>>(headers)
                            .unwrap_or_default(),
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        jobs.sort_by_key(|j| j.job.due_at);
        Ok(jobs)
    }

    /// Deletes released jobs, only while this replica still holds their claim.
    pub async fn delete_released_jobs(
        &self,
        ids: &[String],
        claimer: &str,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM delayed_jobs WHERE id = ANY($1) AND claimed_by = $2")
            .bind(ids)
            .bind(claimer)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// When the next job falls due, so the release loop can sleep until then.
    pub async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        sqlx::query_scalar("SELECT min(due_at) FROM delayed_jobs")
            .fetch_one(&self.pool)
            .await
    }
}
