//! Per-action limits shared by every executor: `rate_limit_per_s` as a token bucket row and
//! `max_concurrency` as leased slot rows. Only actions that set a limit touch these tables.

use std::time::Duration;

use chrono::{DateTime, Utc};

use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::store::Store;

/// Takes one token from the action's bucket (refilled at `rate` per second, holding at most
/// one second's worth): `None` when taken, or how long until one is due.
pub async fn take_rate_token(
    store: &Store,
    tenant_id: TenantId,
    action_id: ActionId,
    rate: u32,
) -> Result<Option<Duration>, sqlx::Error> {
    let rate = f64::from(rate.max(1));
    // The refill is computed in the statement, under the row's lock, so replicas never
    // spend the same token.
    let taken: Option<f64> = sqlx::query_scalar(
        "INSERT INTO action_rate_buckets (tenant_id, action_id, tokens, refilled_at)
         VALUES ($1, $2, $3 - 1, clock_timestamp())
         ON CONFLICT (tenant_id, action_id) DO UPDATE SET
           tokens = LEAST($3, action_rate_buckets.tokens + $3 * EXTRACT(EPOCH FROM
                      clock_timestamp() - action_rate_buckets.refilled_at)) - 1,
           refilled_at = clock_timestamp()
         WHERE LEAST($3, action_rate_buckets.tokens + $3 * EXTRACT(EPOCH FROM
                 clock_timestamp() - action_rate_buckets.refilled_at)) >= 1
         RETURNING tokens",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(rate)
    .fetch_optional(store.pool())
    .await?;
    if taken.is_some() {
        return Ok(None);
    }
    let available: Option<f64> = sqlx::query_scalar(
        "SELECT LEAST($3, tokens + $3 * EXTRACT(EPOCH FROM clock_timestamp() - refilled_at))
         FROM action_rate_buckets WHERE tenant_id = $1 AND action_id = $2",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(rate)
    .fetch_optional(store.pool())
    .await?;
    let missing = 1.0 - available.unwrap_or(0.0);
    Ok(Some(Duration::from_secs_f64(
        (missing / rate).clamp(0.001, 1.0),
    )))
}

/// Takes one of the action's `max` slots for `execution_id` until `lease_until`: whether it
/// was free. Slots whose lease ran out (their executor died) are freed first.
pub async fn acquire_action_slot(
    store: &Store,
    tenant_id: TenantId,
    action_id: ActionId,
    execution_id: ExecutionId,
    max: u32,
    lease_until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    // One writer per action at a time, so that two replicas cannot both take the last slot.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
        .bind(action_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM action_slots
         WHERE tenant_id = $1 AND action_id = $2 AND lease_until < clock_timestamp()",
    )
    .bind(tenant_id)
    .bind(action_id)
    .execute(&mut *tx)
    .await?;
    let taken = sqlx::query(
        "INSERT INTO action_slots (tenant_id, action_id, execution_id, lease_until)
         SELECT $1, $2, $3, $4
         WHERE (SELECT count(*) FROM action_slots
                WHERE tenant_id = $1 AND action_id = $2 AND execution_id <> $3) < $5
         ON CONFLICT (tenant_id, action_id, execution_id)
           DO UPDATE SET lease_until = EXCLUDED.lease_until",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(execution_id)
    .bind(lease_until)
    .bind(i64::from(max))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(taken.rows_affected() == 1)
}

/// Gives a slot back.
pub async fn release_action_slot(
    store: &Store,
    tenant_id: TenantId,
    action_id: ActionId,
    execution_id: ExecutionId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM action_slots
         WHERE tenant_id = $1 AND action_id = $2 AND execution_id = $3",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(execution_id)
    .execute(store.pool())
    .await?;
    Ok(())
}
