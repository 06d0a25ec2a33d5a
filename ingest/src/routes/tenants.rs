//! Tenant and key management, for the admin token only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_common::ids::{ApiKeyId, TenantId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, Principal};
use crate::body::{JsonBody, OptionalJsonBody};
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::routes::{Created, created};
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
) -> ApiResult<Created> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "name must be 1 to 200 bytes",
        ));
    }
    let tenant = crate::store::tenants::create_tenant(&state.store, name).await?;
    Ok(created(
        format!("/v1/tenants/{}", tenant.id),
        serde_json::to_value(tenant).unwrap_or_default(),
    ))
}

/// Who a credential belongs to: `{"role": "admin"}`, or `{"role": "tenant", "tenant": ...}`.
/// A console signs in with it, and a script can check its key without side effects.
pub async fn whoami(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(match principal {
        Principal::Admin => json!({"role": "admin"}),
        Principal::Tenant(id) => {
            let tenant = crate::store::tenants::get_tenant(&state.store, id)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            json!({"role": "tenant", "tenant": tenant})
        }
    }))
}

/// The most tenants one listing shows.
const MAX_LISTED: i64 = 1000;

pub async fn list(State(state): State<AppState>, _: Admin) -> ApiResult<Json<Value>> {
    let tenants = crate::store::tenants::list_tenants(&state.store, MAX_LISTED).await?;
    Ok(Json(json!({ "data": tenants })))
}

/// The tenant with its keys, revoked ones included, so that an operator can find the id to
/// revoke. A key shows its id, name and first characters; never the key nor its hash.
pub async fn get(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = tenant_id(&id)?;
    let tenant = crate::store::tenants::get_tenant(&state.store, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let keys = crate::store::tenants::api_keys_of(&state.store, id).await?;
    let mut body = serde_json::to_value(tenant).unwrap_or_default();
    body["keys"] = serde_json::to_value(keys).unwrap_or_default();
    Ok(Json(body))
}

pub async fn create_key(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    // The body is optional: an empty one means an unnamed key.
    OptionalJsonBody(request): OptionalJsonBody<NewKey>,
) -> ApiResult<Created> {
    let tenant = tenant_id(&id)?;
    crate::store::tenants::get_tenant(&state.store, tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let name = request.name;
    let (record, key) = crate::store::tenants::create_api_key(&state.store, tenant, &name).await?;
    // Where it is revoked (keys are listed with their tenant).
    let location = format!("/v1/tenants/{tenant}/keys/{}", record.id);
    let mut value = serde_json::to_value(record).unwrap_or_default();
    // The only time the key is ever shown.
    value["key"] = json!(key);
    Ok(created(location, value))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    _: Admin,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = tenant_id(&id)?;
    let key: ApiKeyId = key_id.parse().map_err(|_| ApiError::not_found("api key"))?;
    if crate::store::tenants::revoke_api_key(&state.store, tenant, key).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("api key"))
    }
}
