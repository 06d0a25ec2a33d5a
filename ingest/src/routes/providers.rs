//! `POST /v1/providers`, `GET /v1/providers`, `GET /v1/providers/{id}` and
//! `DELETE /v1/providers/{id}`: the senders of inbound webhooks a tenant registers (see
//! `routes/hooks.rs` for their deliveries).

use crate::provider::ProviderSpec;
use crate::store::providers::{ProviderRecord, ProviderWriteError};
use axum::Json;
use axum::extract::{Path, State};
use herald_common::ids::ProviderId;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::routes::{Created, created};
use crate::state::AppState;

/// Secrets at least this long show their last four characters when masked; a shorter one
/// would give away too much of itself.
const MIN_SECRET_LEN_TO_HINT: usize = 16;

/// A secret as read APIs show it, like an action's: enough to tell two apart, never enough to
/// sign with.
fn masked(secret: &str) -> String {
    let prefix = if secret.starts_with("whsec_") {
        "whsec_"
    } else {
        ""
    };
    // Secrets are printable ASCII (checked on create), so any byte is a character boundary.
    let hint = if secret.len() >= MIN_SECRET_LEN_TO_HINT {
        &secret[secret.len() - 4..]
    } else {
        ""
    };
    format!("{prefix}…{hint}")
}

/// A provider as the API shows it. The secret is masked except right after creation.
pub fn view(record: &ProviderRecord, reveal_secret: bool) -> Value {
    let spec = &record.spec;
    let secret = if reveal_secret {
        spec.secret.clone()
    } else {
        masked(&spec.secret)
    };
    json!({
        "id": record.id,
        "tenant_id": record.tenant_id,
        "name": spec.name,
        "scheme": spec.scheme.as_str(),
        "secret": secret,
        "tolerance_s": spec.tolerance_s,
        "signature_header": spec.scheme.signature_header(),
        "event_type": spec.event_type,
        "type_prefix": spec.type_prefix,
        "source": spec.event_source(),
        // Where the provider is to send its webhooks (no key: the signature authenticates).
        "hook_path": format!("/v1/hooks/{}", record.id),
        "created_at": record.created_at,
    })
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Created> {
    let spec = ProviderSpec::parse(&body)?;
    match crate::store::providers::create_provider(&state.store, tenant, &spec).await {
        Ok(record) => Ok(created(
            format!("/v1/providers/{}", record.id),
            view(&record, true),
        )),
        Err(ProviderWriteError::NameTaken(name)) => Err(ApiError::new(
            ErrorCode::NameTaken,
            format!("a provider named {name:?} already exists"),
        )),
        Err(ProviderWriteError::Seal(error)) => Err(error.into()),
        Err(ProviderWriteError::Database(error)) => Err(error.into()),
    }
}

pub async fn list(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let providers = crate::store::providers::providers_of(&state.store, tenant).await?;
    let data: Vec<Value> = providers.iter().map(|p| view(p, false)).collect();
    Ok(Json(json!({"data": data})))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = crate::store::providers::get_provider(&state.store, tenant, provider_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&record, false)))
}

/// Deletes the provider for good and answers with it as it was; its deliveries answer 404
/// from now on. Events it already delivered stay.
pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let record = crate::store::providers::delete_provider(&state.store, tenant, provider_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(&record, false)))
}

/// A provider id from a path; a malformed one cannot name anything, so it answers as an
/// unknown one does.
pub(crate) fn provider_id(id: &str) -> ApiResult<ProviderId> {
    id.parse().map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::not_found("provider")
}
