//! `GET /v1/executions/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use herald_common::ids::ExecutionId;
use serde_json::Value;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    // A malformed id cannot name anything: answer as for an unknown one.
    let id: ExecutionId = id.parse().map_err(|_| ApiError::not_found("execution"))?;
    let execution = state
        .store
        .get_execution(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let attempts = state.store.attempts_of(tenant, id).await?;
    let mut body = serde_json::to_value(execution).unwrap_or_default();
    body["attempts"] = serde_json::to_value(attempts).unwrap_or_default();
    Ok(Json(body))
}
