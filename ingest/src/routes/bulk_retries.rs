//! `GET /v1/bulk-retries/{id}` (how far a retry by filter has got) and
//! `POST /v1/bulk-retries/{id}/cancel` (stop it after the page under way).

use axum::Json;
use axum::extract::{Path, State};
use herald_common::ids::BulkRetryId;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

fn bulk_retry_id(id: &str) -> ApiResult<BulkRetryId> {
    id.parse().map_err(|_| ApiError::not_found("bulk retry"))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let bulk = state
        .store
        .get_bulk_retry(tenant, bulk_retry_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("bulk retry"))?;
    Ok(Json(json!(bulk)))
}

pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let bulk = state
        .store
        .cancel_bulk_retry(tenant, bulk_retry_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("bulk retry"))?;
    Ok(Json(json!(bulk)))
}
