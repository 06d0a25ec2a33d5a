//! One tenant at a glance, for the operator console: the last hour minute by minute, and what
//! needs attention now. Every query reads an index that starts with the tenant id
//! (`events_received`, `executions_tenant_status`, the circuits' primary key), so its cost
//! grows with the tenant's last hour, not with the table.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use sqlx::Row;

use herald_common::store::Store;

use super::stats::Stats;
use herald_common::ids::TenantId;

/// A retry this late past its time counts as overdue: the scheduler releases on time to the
/// second, so anything later means the scheduler is behind or down.
pub const OVERDUE_AFTER_S: i64 = 30;

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The last hour's executions: by status, success rate, attempt durations.
    pub last_hour: Stats,
    /// Events received in the last hour.
    pub events_last_hour: i64,
    /// Per minute, oldest first, the last hour: events in, executions succeeded and failed.
    pub minutes: Vec<Minute>,
    /// Destinations whose circuit is open or half-open now.
    pub open_circuits: i64,
    /// Retries more than [`OVERDUE_AFTER_S`] past their time.
    pub overdue_retries: i64,
    /// When the tenant's newest event arrived, its circuits and its actions last changed:
    /// with the counts above, what tells a live view that something moved.
    pub latest_event_at: Option<DateTime<Utc>>,
    pub circuits_changed_at: Option<DateTime<Utc>>,
    pub actions_changed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Minute {
    pub at: DateTime<Utc>,
    pub events: i64,
    pub succeeded: i64,
    pub failed: i64,
}

/// Sixty empty minutes ending with the one holding `now`.
fn empty_minutes(now: DateTime<Utc>) -> Vec<Minute> {
    let last = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    (0..60)
        .rev()
        .map(|back| Minute {
            at: last - Duration::minutes(back),
            events: 0,
            succeeded: 0,
            failed: 0,
        })
        .collect()
}

pub async fn overview(
    store: &Store,
    tenant_id: TenantId,
    now: DateTime<Utc>,
) -> Result<Overview, sqlx::Error> {
    let mut minutes = empty_minutes(now);
    let since = minutes[0].at;
    let until = now + Duration::seconds(1);
    let last_hour = super::stats::stats(store, tenant_id, None, since, until).await?;
    let slot = |at: DateTime<Utc>| usize::try_from((at - since).num_minutes()).ok();

    let events = sqlx::query(
        "SELECT date_bin('1 minute', received_at, $2) AS minute, count(*) AS n
         FROM events WHERE tenant_id = $1 AND received_at >= $2 AND received_at < $3
         GROUP BY 1",
    )
    .bind(tenant_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    let mut events_last_hour = 0;
    for row in &events {
        let n: i64 = row.try_get("n")?;
        events_last_hour += n;
        if let Some(minute) = slot(row.try_get("minute")?).and_then(|i| minutes.get_mut(i)) {
            minute.events = n;
        }
    }

    let finished = sqlx::query(
        "SELECT date_bin('1 minute', created_at, $2) AS minute, status, count(*) AS n
         FROM executions
         WHERE tenant_id = $1 AND status IN ('succeeded', 'failed')
           AND created_at >= $2 AND created_at < $3
         GROUP BY 1, 2",
    )
    .bind(tenant_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    for row in &finished {
        let n: i64 = row.try_get("n")?;
        let status: String = row.try_get("status")?;
        if let Some(minute) = slot(row.try_get("minute")?).and_then(|i| minutes.get_mut(i)) {
            match status.as_str() {
                "succeeded" => minute.succeeded = n,
                _ => minute.failed = n,
            }
        }
    }

    let now_row = sqlx::query(
        "SELECT
           (SELECT count(*) FROM executions
             WHERE tenant_id = $1 AND status = 'retry_scheduled'
               AND next_attempt_at < $2) AS overdue_retries,
           (SELECT count(*) FROM endpoint_circuits
             WHERE tenant_id = $1 AND state <> 'closed') AS open_circuits,
           (SELECT max(updated_at) FROM endpoint_circuits
             WHERE tenant_id = $1) AS circuits_changed_at,
           (SELECT max(received_at) FROM events WHERE tenant_id = $1) AS latest_event_at,
           (SELECT max(updated_at) FROM actions WHERE tenant_id = $1) AS actions_changed_at",
    )
    .bind(tenant_id)
    .bind(now - Duration::seconds(OVERDUE_AFTER_S))
    .fetch_one(store.pool())
    .await?;

    Ok(Overview {
        last_hour,
        events_last_hour,
        minutes,
        open_circuits: now_row.try_get("open_circuits")?,
        overdue_retries: now_row.try_get("overdue_retries")?,
        latest_event_at: now_row.try_get("latest_event_at")?,
        circuits_changed_at: now_row.try_get("circuits_changed_at")?,
        actions_changed_at: now_row.try_get("actions_changed_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_is_sixty_whole_minutes_ending_with_the_current_one() {
        let now: DateTime<Utc> = "2026-11-29T10:15:42Z".parse().unwrap();
        let minutes = empty_minutes(now);
        assert_eq!(minutes.len(), 60);
        assert_eq!(
            minutes[59].at,
            "2026-11-29T10:15:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            minutes[0].at,
            "2026-11-29T09:16:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(
            minutes
                .windows(2)
                .all(|w| w[1].at - w[0].at == Duration::minutes(1))
        );
    }
}
