//! `POST /v1/actions` and `GET /v1/actions/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_common::action::ActionSpec;
use herald_common::ids::{ActionId, TenantId};
use herald_common::store::{ActionRecord, ActionWriteError};
use serde_json::Value;

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An action as the API shows it. Signing secrets are masked except right after creation.
pub fn view(record: &ActionRecord, reveal_secrets: bool) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if !reveal_secrets && let Some(hook) = record.spec.handler.webhook() {
        let masked: Vec<String> = hook
            .secrets
            .iter()
            .map(|s| format!("whsec_…{}", &s[s.len().saturating_sub(4)..]))
            .collect();
        value["handler"]["secrets"] = serde_json::to_value(masked).unwrap_or_default();
    }
    value
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = ActionSpec::parse(&body)?;
    check_budget(&state, tenant, &spec)?;
    match state.store.create_action(tenant, &spec).await {
        Ok(record) => Ok((StatusCode::CREATED, Json(view(&record, true)))),
        Err(ActionWriteError::NameTaken(name)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("an action named {name:?} already exists"),
        )),
        Err(ActionWriteError::Database(error)) => Err(error.into()),
    }
}

/// Wildcard patterns and regex conditions cost every event a scan: a tenant may hold only so
/// many. Counted from the live engine, which trails writes by a few milliseconds.
fn check_budget(state: &AppState, tenant: TenantId, spec: &ActionSpec) -> ApiResult<()> {
    let adding = spec.costly_parts();
    if adding == 0 {
        return Ok(());
    }
    let budget = state.config.wildcard_budget_per_tenant;
    let held = state.engine.costly_parts(tenant);
    if held + adding > budget {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wildcard_budget_exceeded",
            format!(
                "event_types and conditions: this action adds {adding} wildcard patterns or \
                 regex conditions to the tenant's {held}; the budget is {budget} \
                 (ingest.wildcard_budget_per_tenant)"
            ),
        ));
    }
    Ok(())
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id: ActionId = id.parse().map_err(|_| ApiError::not_found("action"))?;
    let record = state
        .store
        .get_action(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))?;
    Ok(Json(view(&record, false)))
}
