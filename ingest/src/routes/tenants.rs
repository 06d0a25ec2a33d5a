//! Tenant and key management, for the admin token only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_common::ids::{ApiKeyId, TenantId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Principal};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    name: String,
}

fn tenant_id(text: &str) -> ApiResult<TenantId> {
    text.parse().map_err(|_| ApiError::not_found("tenant"))
}

pub async fn create(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name must be 1 to 200 bytes",
        ));
    }
    let tenant = state.store.create_tenant(name).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(tenant).unwrap_or_default()),
    ))
}

/// Who a credential belongs to: `{"role": "admin"}`, or `{"role": "tenant", "tenant": ...}`.
/// A console signs in with it, and a script can check its key without side effects.
pub async fn whoami(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(match principal {
        Principal::Admin => json!({"role": "admin"}),
        Principal::Tenant(id) => {
            let tenant = state
                .store
                .get_tenant(id)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            json!({"role": "tenant", "tenant": tenant})
        }
    }))
}

/// The most tenants one listing shows.
const MAX_LISTED: i64 = 1000;

pub async fn list(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Value>> {
    let tenants = state.store.list_tenants(MAX_LISTED).await?;
    Ok(Json(json!({ "data": tenants })))
}

pub async fn get(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant = state
        .store
        .get_tenant(tenant_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(serde_json::to_value(tenant).unwrap_or_default()))
}

pub async fn create_key(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = tenant_id(&id)?;
    // The body is optional: an empty one means an unnamed key.
    let request: NewKey = if body.is_empty() {
        NewKey::default()
    } else {
        serde_json::from_slice(&body).map_err(ApiError::invalid_json)?
    };
    state
        .store
        .get_tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let name = request.name;
    let (record, key) = state.store.create_api_key(tenant, &name).await?;
    let mut value = serde_json::to_value(record).unwrap_or_default();
    // The only time the key is ever shown.
    value["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(value)))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    _: Admin,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = tenant_id(&id)?;
    let key: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("api key"))?;
    if state.store.revoke_api_key(tenant, key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api key"))
    }
}
