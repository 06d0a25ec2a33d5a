//! Circuit breakers per destination, shared by every executor through one row each (see
//! `crate::circuit` for the decisions; this module only reads and writes them under row locks).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::Store;
use crate::circuit::{Circuit, CircuitPolicy, Outcomes, State};
use crate::ids::{EndpointId, TenantId};

/// One destination's circuit as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitEntry {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    /// `scheme://host:port`.
    pub endpoint: String,
    pub circuit: Circuit,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What one executor saw of one destination since its last flush.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointOutcomes {
    pub tenant_id: TenantId,
    pub endpoint: String,
    pub outcomes: Outcomes,
    pub last_error: Option<String>,
    /// When the first of these outcomes was seen.
    pub first_seen: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, tenant_id, endpoint, state, opened_at, retry_at, trips, consecutive_failures,
     window_start, window_attempts, window_failures, probes_in_flight, probe_lease_until,
     last_error, updated_at";

fn count(row: &sqlx::postgres::PgRow, column: &str) -> Result<u32, sqlx::Error> {
    Ok(row.try_get::<i32, _>(column)?.max(0) as u32)
}

fn entry_from_row(row: &sqlx::postgres::PgRow) -> Result<CircuitEntry, sqlx::Error> {
    let state: String = row.try_get("state")?;
    Ok(CircuitEntry {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        endpoint: row.try_get("endpoint")?,
        circuit: Circuit {
            // The column is checked by the schema; an unknown value reads as closed.
            state: State::parse(&state).unwrap_or(State::Closed),
            opened_at: row.try_get("opened_at")?,
            retry_at: row.try_get("retry_at")?,
            trips: count(row, "trips")?,
            consecutive_failures: count(row, "consecutive_failures")?,
            window_start: row.try_get("window_start")?,
            window_attempts: count(row, "window_attempts")?,
            window_failures: count(row, "window_failures")?,
            probes_in_flight: count(row, "probes_in_flight")?,
            probe_lease_until: row.try_get("probe_lease_until")?,
        },
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn int(value: u32) -> i32 {
    value.min(i32::MAX as u32) as i32
}

impl Store {
    /// Circuits changed after `since` (every one when `None`), for executors' caches.
    pub async fn circuits_changed_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<CircuitEntry>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM endpoint_circuits
             WHERE $1::timestamptz IS NULL OR updated_at > $1 ORDER BY updated_at"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// A tenant's circuits, for `GET /v1/endpoints`.
    pub async fn circuits_of(&self, tenant_id: TenantId) -> Result<Vec<CircuitEntry>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM endpoint_circuits WHERE tenant_id = $1 ORDER BY endpoint"
        ))
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Closes a tenant's circuit by hand; `None` when the tenant has no such endpoint.
    pub async fn reset_circuit(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
        now: DateTime<Utc>,
    ) -> Result<Option<CircuitEntry>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM endpoint_circuits WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut entry = entry_from_row(&row)?;
        entry.circuit = Circuit::reset(now);
        let entry = write(
            &mut tx,
            &entry.tenant_id,
            &entry.endpoint,
            &entry.circuit,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    /// Applies each executor's condensed outcomes to their circuits, under row locks, in one
    /// transaction. A destination without a row gets one only once it fails.
    pub async fn absorb_outcomes(
        &self,
        batch: &[EndpointOutcomes],
        policy: &CircuitPolicy,
        now: DateTime<Utc>,
    ) -> Result<Vec<CircuitEntry>, sqlx::Error> {
        // Rows are locked in one order by every executor, so two flushes never deadlock.
        let mut batch: Vec<&EndpointOutcomes> = batch.iter().collect();
        batch.sort_by(|a, b| (a.tenant_id, &a.endpoint).cmp(&(b.tenant_id, &b.endpoint)));
        let mut tx = self.pool.begin().await?;
        let mut changed = Vec::new();
        for item in batch {
            let current = lock(&mut tx, item.tenant_id, &item.endpoint).await?;
            let circuit = match current {
                // Attempts made before an operator's reset (or a closing probe) must not undo it.
                Some(entry) if entry.circuit.closed_after(item.first_seen) => continue,
                Some(entry) => entry.circuit,
                None if item.outcomes.failures == 0 => continue,
                None => Circuit::closed(now),
            };
            let next = circuit.absorb(policy, &item.outcomes, now);
            changed.push(
                write(
                    &mut tx,
                    &item.tenant_id,
                    &item.endpoint,
                    &next,
                    item.last_error.as_deref(),
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Claims a probe of an open (or half-open) circuit: `Some` when this caller may send one.
    pub async fn claim_probe(
        &self,
        tenant_id: TenantId,
        endpoint: &str,
        policy: &CircuitPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<CircuitEntry>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = lock(&mut tx, tenant_id, endpoint).await? else {
            return Ok(None);
        };
        let Some(next) = current.circuit.claim_probe(policy, now) else {
            return Ok(None);
        };
        let entry = write(&mut tx, &tenant_id, endpoint, &next, None).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    /// Records a probe's result: a success closes the circuit, a failure opens it again.
    pub async fn probe_result(
        &self,
        tenant_id: TenantId,
        endpoint: &str,
        success: bool,
        error: Option<&str>,
        policy: &CircuitPolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<CircuitEntry>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = lock(&mut tx, tenant_id, endpoint).await? else {
            return Ok(None);
        };
        let next = current.circuit.probe_result(policy, success, now);
        let entry = write(&mut tx, &tenant_id, endpoint, &next, error).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }
}

async fn lock(
    tx: &mut sqlx::PgConnection,
    tenant_id: TenantId,
    endpoint: &str,
) -> Result<Option<CircuitEntry>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM endpoint_circuits WHERE tenant_id = $1 AND endpoint = $2 FOR UPDATE"
    ))
    .bind(tenant_id)
    .bind(endpoint)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// Writes a circuit (inserting its row if need be); `last_error` replaces the stored one
/// only when given.
async fn write(
    tx: &mut sqlx::PgConnection,
    tenant_id: &TenantId,
    endpoint: &str,
    circuit: &Circuit,
    last_error: Option<&str>,
) -> Result<CircuitEntry, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO endpoint_circuits (id, tenant_id, endpoint, state, opened_at, retry_at, trips,
           consecutive_failures, window_start, window_attempts, window_failures, probes_in_flight,
           probe_lease_until, last_error, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, clock_timestamp())
         ON CONFLICT (tenant_id, endpoint) DO UPDATE SET
           state = EXCLUDED.state, opened_at = EXCLUDED.opened_at, retry_at = EXCLUDED.retry_at,
           trips = EXCLUDED.trips, consecutive_failures = EXCLUDED.consecutive_failures,
           window_start = EXCLUDED.window_start, window_attempts = EXCLUDED.window_attempts,
           window_failures = EXCLUDED.window_failures,
           probes_in_flight = EXCLUDED.probes_in_flight,
           probe_lease_until = EXCLUDED.probe_lease_until,
           last_error = COALESCE(EXCLUDED.last_error, endpoint_circuits.last_error),
           updated_at = clock_timestamp()
         RETURNING {COLUMNS}"
    ))
    .bind(EndpointId::new())
    .bind(tenant_id)
    .bind(endpoint)
    .bind(circuit.state.as_str())
    .bind(circuit.opened_at)
    .bind(circuit.retry_at)
    .bind(int(circuit.trips))
    .bind(int(circuit.consecutive_failures))
    .bind(circuit.window_start)
    .bind(int(circuit.window_attempts))
    .bind(int(circuit.window_failures))
    .bind(int(circuit.probes_in_flight))
    .bind(circuit.probe_lease_until)
    .bind(last_error.map(super::storable_text))
    .fetch_one(&mut *tx)
    .await?;
    entry_from_row(&row)
}
