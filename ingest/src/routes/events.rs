//! `POST /v1/events` and `GET /v1/events/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use herald_common::event::{EventId, IncomingEvent};
use herald_common::store::InsertedEvent;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The `Idempotency-Key` header, checked.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some(text.to_owned()))
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    JsonBody(incoming): JsonBody<IncomingEvent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let key = idempotency_key(&headers)?;
    if incoming.tenant_id.is_some() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "tenant_id_not_allowed",
            "`tenant_id` comes from the API key and must not be in the body",
        ));
    }
    let event = incoming
        .validate(tenant, None, Utc::now(), &state.limits)
        .inspect_err(|_| {
            state
                .metrics
                .events_received
                .with_label_values(&["http", "rejected"])
                .inc()
        })?;
    let id = event.id.clone();
    let outcome = state
        .batcher
        .submit(event, key)
        .await
        .map_err(|_| ApiError::unavailable())?;
    let (id, duplicate): (EventId, bool) = match outcome {
        InsertedEvent::New => (id, false),
        InsertedEvent::Duplicate(original) => (original, true),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "duplicate": duplicate})),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let event = state
        .store
        .get_event(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let executions = state.store.executions_of_event(tenant, &id).await?;
    let mut body = serde_json::to_value(event).unwrap_or_default();
    body["executions"] = serde_json::to_value(executions).unwrap_or_default();
    Ok(Json(body))
}
