//! `GET /v1/endpoints` (the tenant's destinations and their circuits) and
//! `POST /v1/endpoints/{id}/reset` (close one by hand).

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use herald_common::circuit::State as CircuitState;
use herald_common::ids::EndpointId;
use herald_common::store::CircuitEntry;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A destination's circuit as the API shows it at `now`.
fn view(entry: &CircuitEntry, now: DateTime<Utc>) -> Value {
    let circuit = &entry.circuit;
    // An open circuit past its cool-down admits a probe: show it as half-open.
    let state = match circuit.state {
        CircuitState::Open if circuit.retry_at.is_some_and(|at| at <= now) => {
            CircuitState::HalfOpen
        }
        state => state,
    };
    json!({
        "id": entry.id,
        "endpoint": entry.endpoint,
        "state": state.as_str(),
        "opened_at": circuit.opened_at,
        "retry_at": circuit.retry_at,
        "trips": circuit.trips,
        "consecutive_failures": circuit.consecutive_failures,
        "window": {
            "since": circuit.window_start,
            "attempts": circuit.window_attempts,
            "failures": circuit.window_failures,
            "failure_rate": circuit.failure_rate(),
        },
        "last_error": entry.last_error,
        "updated_at": entry.updated_at,
    })
}

pub async fn list(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let entries = state.store.circuits_of(tenant).await?;
    Ok(Json(json!({
        "data": entries.iter().map(|e| view(e, state.clock.now())).collect::<Vec<_>>(),
    })))
}

pub async fn reset(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // A malformed id cannot name anything: answer as for an unknown one.
    let id: EndpointId = id.parse().map_err(|_| ApiError::not_found("endpoint"))?;
    let entry = state
        .store
        .reset_circuit(tenant, id, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))?;
    Ok(Json(view(&entry, state.clock.now())))
}
