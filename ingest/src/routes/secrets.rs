//! `PUT /v1/secrets/{name}`, `GET /v1/secrets` and `DELETE /v1/secrets/{name}`: a tenant's
//! secrets, which templates refer to as `{{ secrets.NAME }}`. Write-only: no answer ever
//! holds a value, and the store keeps it sealed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_common::store::{MAX_SECRET_LEN, SecretInfo, valid_secret_name};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    value: String,
}

fn checked_name(name: &str) -> ApiResult<&str> {
    if valid_secret_name(name) {
        Ok(name)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidSecret,
            "name: must be 1 to 64 of a-z, 0-9 and _ (templates read it as secrets.NAME)",
        ))
    }
}

fn view(info: &SecretInfo) -> Value {
    json!(info)
}

pub async fn put(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SecretIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = checked_name(&name)?;
    if body.value.is_empty() || body.value.len() > MAX_SECRET_LEN {
        return Err(ApiError::new(
            ErrorCode::InvalidSecret,
            format!("value: must be 1 to {MAX_SECRET_LEN} bytes"),
        ));
    }
    let (info, created) = state
        .store
        .put_secret(tenant, name, &body.value)
        .await
        .map_err(|error| match error {
            herald_common::store::SecretWriteError::Seal(error) => ApiError::from(error),
            herald_common::store::SecretWriteError::Database(error) => ApiError::from(error),
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&info))))
}

pub async fn list(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let secrets = state.store.secrets(tenant).await?;
    let data: Vec<Value> = secrets.iter().map(view).collect();
    Ok(Json(json!({"data": data})))
}

pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = checked_name(&name)?;
    if state.store.delete_secret(tenant, name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("secret"))
    }
}
