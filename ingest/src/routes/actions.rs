//! `POST /v1/actions`, `GET /v1/actions/{id}`, and an action's life: `DELETE /v1/actions/{id}`
//! (soft), `POST /v1/actions/{id}/restore`, `.../enable`, `.../disable`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{ETAG, LOCATION};
use axum::http::{HeaderName, StatusCode};
use herald_common::ids::{ActionId, TenantId};
use herald_common::store::Lifecycle;
use herald_handlers::{Action, ActionSpec, parse_action};
use serde_json::Value;

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::state::AppState;

/// An action as the API shows it: its handler as the handler's own view shows it (credential
/// headers masked; signing secrets too, except right after creation: Herald may have made
/// them up).
pub fn view(record: &Action, reveal_secrets: bool) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    value["handler"] = record.spec.handler.view(reveal_secrets);
    value
}

/// An action in an answer, with its `ETag`.
pub type Shown = ([(HeaderName, String); 1], Json<Value>);

/// The `ETag` of an action: its revision, the very token `If-Match` takes on an update, so a
/// client can hand back what it was given.
pub(crate) fn etag(record: &Action) -> (HeaderName, String) {
    (ETAG, format!("\"{}\"", record.revision))
}

/// An action as answered by the routes that show one (secrets masked), with its `ETag`.
pub(crate) fn shown(record: &Action) -> Shown {
    ([etag(record)], Json(view(record, false)))
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<(StatusCode, [(HeaderName, String); 2], Json<Value>)> {
    let mut spec = parse_action(&body)?;
    spec.keep_stored(None)?;
    check_handlers(&state, tenant, [(String::new(), &spec)]).await?;
    if spec.matching.enabled {
        check_budget(&state, tenant, spec.costly_parts())?;
    }
    let record = state.store.create_action(tenant, &spec).await?;
    Ok((
        StatusCode::CREATED,
        [
            (LOCATION, format!("/v1/actions/{}", record.id)),
            etag(&record),
        ],
        Json(view(&record, true)),
    ))
}

/// What a handler needs that parsing alone cannot see: every secret its templates use exists,
/// and an email without its own server has the operator's relay. `where_` prefixes the field
/// in the error (an action set's `actions[3].`).
pub(crate) async fn check_handlers<'a>(
    state: &AppState,
    tenant: TenantId,
    specs: impl IntoIterator<Item = (String, &'a ActionSpec)>,
) -> ApiResult<()> {
    let mut uses: Vec<(String, &str, &str)> = Vec::new();
    for (where_, spec) in specs {
        if let herald_handlers::Handler::Email(email) = &spec.handler
            && email.smtp.is_none()
            && state.outbound.default_relay.is_none()
        {
            return Err(ApiError::new(
                ErrorCode::InvalidAction,
                format!(
                    "{where_}handler.smtp: is required, since the operator configured no \
                     default relay (executor.smtp.host)"
                ),
            ));
        }
        if let Some(workflow) = spec.handler.workflow()
            && workflow.steps.len() > state.config.max_workflow_steps
        {
            return Err(ApiError::new(
                ErrorCode::InvalidAction,
                format!(
                    "{where_}handler.steps: {} steps; at most {} (ingest.max_workflow_steps)",
                    workflow.steps.len(),
                    state.config.max_workflow_steps
                ),
            ));
        }
        for (name, field) in spec.handler.secret_uses() {
            uses.push((where_.clone(), name, field));
        }
    }
    let names: Vec<&str> = uses.iter().map(|(_, name, _)| *name).collect();
    let missing = state.store.missing_secrets(tenant, &names).await?;
    if let Some((where_, name, field)) = uses
        .iter()
        .find(|(_, name, _)| missing.iter().any(|m| m == name))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!(
                "{where_}{field}: refers to secrets.{name}, which this tenant has not stored: \
                 PUT /v1/secrets/{name} first"
            ),
        ));
    }
    Ok(())
}

/// Wildcard patterns and regex conditions cost every event a scan: a tenant may hold only so
/// many. Counted from the live engine, which trails writes by a few milliseconds.
pub(crate) fn check_budget(state: &AppState, tenant: TenantId, adding: usize) -> ApiResult<()> {
    if adding == 0 {
        return Ok(());
    }
    let budget = state.config.wildcard_budget_per_tenant;
    let held = state.engine.costly_parts(tenant);
    if held + adding > budget {
        return Err(ApiError::new(
            ErrorCode::WildcardBudgetExceeded,
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
) -> ApiResult<Shown> {
    let record = find(&state, tenant, &id).await?;
    Ok(shown(&record))
}

fn action_id(id: &str) -> ApiResult<ActionId> {
    // A malformed id cannot name anything: answer as for an unknown one.
    id.parse().map_err(|_| ApiError::not_found("action"))
}

/// One of the tenant's actions as the API sees them: 404 for a malformed or unknown id, and
/// for a delivery's own action (an implementation detail of the delivery).
pub(crate) async fn find(state: &AppState, tenant: TenantId, id: &str) -> ApiResult<Action> {
    state
        .store
        .get_action(tenant, action_id(id)?)
        .await?
        .filter(|record| !record.one_off)
        .ok_or_else(|| ApiError::not_found("action"))
}

async fn change(
    state: &AppState,
    tenant: TenantId,
    id: &str,
    lifecycle: Lifecycle,
) -> ApiResult<Shown> {
    let current = find(state, tenant, id).await?;
    if matches!(lifecycle, Lifecycle::Enable | Lifecycle::Restore) {
        // Coming back into the engine costs the tenant's wildcard budget again.
        if !current.is_live() {
            check_budget(state, tenant, current.spec.costly_parts())?;
        }
    }
    let record = state
        .store
        .change_action(tenant, current.id, lifecycle)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))?;
    Ok(shown(&record))
}

pub async fn delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Shown> {
    change(&state, tenant, &id, Lifecycle::Delete).await
}

pub async fn restore(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Shown> {
    change(&state, tenant, &id, Lifecycle::Restore).await
}

pub async fn enable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Shown> {
    change(&state, tenant, &id, Lifecycle::Enable).await
}

pub async fn disable(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Shown> {
    change(&state, tenant, &id, Lifecycle::Disable).await
}
