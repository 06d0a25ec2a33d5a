//! `POST /v1/actions/{id}/test`: would this event match, and why or why not, condition by
//! condition; with `"send": true`, also one real, signed delivery to the action's webhook,
//! answered with what came back. A test delivery is not an execution: it is not recorded,
//! retried or counted, and it does not touch the destination's circuit. It goes through the
//! executor's own request building, signing and destination guard.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use herald_common::event::{Event, IncomingEvent};
use herald_common::ids::ExecutionId;
use herald_common::messages::ExecutionJob;
use herald_common::store::ActionRecord;
use herald_executor::handlers::{Performed, webhook};
use herald_executor::outcome::Verdict;
use herald_engine::EventRef;
use herald_engine::explain::explain;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::routes::actions::find;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    event: IncomingEvent,
    #[serde(default)]
    send: bool,
}

pub async fn test(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<TestRequest>,
) -> ApiResult<Json<Value>> {
    let action = find(&state, tenant, &id).await?;
    let event = request
        .event
        .validate(tenant, None, Utc::now(), &state.limits)
        .map_err(|error| {
            let mut error = ApiError::from(error);
            error.message = format!("event: {}", error.message);
            error
        })?;
    let mut report =
        explain(&action.spec, action.is_live(), &EventRef::of(&event)).map_err(|error| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_event",
                format!("event: {error}"),
            )
        })?;
    if request.send {
        report["delivery"] = send(&state, &action, event).await?;
    }
    Ok(Json(report))
}

async fn send(state: &AppState, action: &ActionRecord, event: Event) -> ApiResult<Value> {
    let Some(hook) = action.spec.handler.webhook() else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_sendable",
            format!(
                "a test delivery needs a webhook handler; this action's is {}",
                action.spec.handler.kind()
            ),
        ));
    };
    let job = ExecutionJob {
        execution_id: ExecutionId::new(),
        tenant_id: action.tenant_id,
        action_id: action.id,
        attempt: 1,
        event,
    };
    let performed = webhook(
        &state.outbound.client,
        &state.outbound.destinations,
        &job,
        hook,
        None,
        state.outbound.body_limit,
        Utc::now(),
    )
    .await;
    Ok(attempt_view(&job, &performed))
}

/// The attempt as the executor would record it.
fn attempt_view(job: &ExecutionJob, performed: &Performed) -> Value {
    let delivered = &performed.delivered;
    let outcome = match &performed.verdict {
        Verdict::Success => "succeeded",
        Verdict::Retry { .. } => "would_retry",
        Verdict::Fail { .. } | Verdict::Gone => "failed",
    };
    let headers: serde_json::Map<String, Value> = delivered
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), json!(value)))
        .collect();
    json!({
        "webhook_id": job.execution_id,
        "url": performed.target,
        "outcome": outcome,
        "response_status": delivered.status,
        "response_headers": headers,
        "response_body": delivered.body,
        "error_kind": delivered.error.as_ref().map(|(kind, _)| kind.as_str()),
        "error_message": delivered.error.as_ref().map(|(_, message)| message),
        "duration_ms": delivered.duration.as_millis() as u64,
    })
}
