//! Delivery statistics of a tenant, or of one action, over a time window: executions by
//! status, success rate, attempts per success, attempt duration percentiles, and workflow
//! steps' attempts by handler type.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use herald_common::ids::{ActionId, TenantId};
use herald_common::status::ExecutionStatus;
use herald_common::store::Store;

/// Statistics as the API shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Executions created in the window, by status, and their total.
    pub executions: serde_json::Map<String, serde_json::Value>,
    /// Succeeded over finished (succeeded + failed); `None` before anything finished.
    pub success_rate: Option<f64>,
    /// Attempts a succeeded execution took, on average.
    pub attempts_per_success: Option<f64>,
    /// Attempt durations in the window, in milliseconds.
    pub duration_ms: Percentiles,
    /// Workflow steps' attempts made in the window, by the step's handler type, then outcome.
    pub step_attempts: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

/// Statistics of the tenant's executions created in `[since, until)`, all of them or one
/// action's.
pub async fn stats(
    store: &Store,
    tenant_id: TenantId,
    action_id: Option<ActionId>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Stats, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT status, count(*) AS n, sum(attempts) AS attempts FROM executions
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR action_id = $2)
           AND created_at >= $3 AND created_at < $4
         GROUP BY status",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    let mut executions = serde_json::Map::new();
    for status in ExecutionStatus::ALL {
        executions.insert(status.as_str().into(), 0.into());
    }
    let (mut total, mut succeeded, mut failed, mut success_attempts) = (0i64, 0i64, 0i64, 0i64);
    for row in &rows {
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
        let attempts: Option<i64> = row.try_get("attempts")?;
        total += n;
        match status.as_str() {
            "succeeded" => {
                succeeded = n;
                success_attempts = attempts.unwrap_or(0);
            }
            "failed" => failed = n,
            _ => {}
        }
        executions.insert(status, n.into());
    }
    executions.insert("total".into(), total.into());
    let (p50, p95): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms)
         FROM attempts a
         WHERE a.tenant_id = $1 AND a.started_at >= $3 AND a.started_at < $4
           AND ($2::uuid IS NULL OR a.execution_id IN (
                 SELECT id FROM executions WHERE tenant_id = $1 AND action_id = $2))",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(since)
    .bind(until)
    .fetch_one(store.pool())
    .await?;
    let steps: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT handler_type, outcome, count(*) FROM step_attempts a
         WHERE a.tenant_id = $1 AND a.started_at >= $3 AND a.started_at < $4
           AND ($2::uuid IS NULL OR a.execution_id IN (
                 SELECT id FROM executions WHERE tenant_id = $1 AND action_id = $2))
         GROUP BY 1, 2",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    let mut step_attempts = serde_json::Map::new();
    for (kind, outcome, n) in steps {
        let by_outcome = step_attempts
            .entry(kind)
            .or_insert_with(|| serde_json::json!({}));
        by_outcome[outcome] = n.into();
    }
    let finished = succeeded + failed;
    Ok(Stats {
        since,
        until,
        executions,
        success_rate: (finished > 0).then(|| succeeded as f64 / finished as f64),
        attempts_per_success: (succeeded > 0).then(|| success_attempts as f64 / succeeded as f64),
        duration_ms: Percentiles { p50, p95 },
        step_attempts,
    })
}
