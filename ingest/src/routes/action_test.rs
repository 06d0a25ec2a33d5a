//! `POST /v1/actions/{id}/test`: would this event match, and why or why not, condition by
//! condition; what the action would send for it, every template rendered (the request or the
//! email, credentials and secrets masked), sending nothing; with `"send": true`, also one
//! real attempt of the action's handler (for those that only send: a webhook, an API request,
//! an email), answered with what came back. A test attempt is not an execution: it is not
//! recorded, retried or counted, and it does not touch the destination's circuit. It is made
//! by the handler's own code, through the same guarded client, signing and response limit as
//! the executor's.

use axum::Json;
use axum::extract::{Path, State};
use herald_common::action::HandlerSpec;
use herald_common::event::IncomingEvent;
use herald_common::ids::ExecutionId;
use herald_common::messages::ExecutionJob;
use herald_engine::EventRef;
use herald_engine::explain::explain;
use herald_handlers::outcome::Verdict;
use herald_handlers::{Context, Performed};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::routes::actions::find;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    event: IncomingEvent,
    #[serde(default)]
    send: bool,
    /// For a workflow: what each step that sends would answer, as later steps read it
    /// (`steps.ID.output`), by step id.
    #[serde(default)]
    outputs: std::collections::BTreeMap<String, Value>,
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
        .validate(tenant, None, state.clock.now(), &state.limits)
        .map_err(|error| {
            let mut error = ApiError::from(error);
            error.message = format!("event: {}", error.message);
            error
        })?;
    let mut report = explain(
        &action.spec.matching,
        action.is_live(),
        &EventRef::of(&event),
    )
    .map_err(|error| ApiError::new(ErrorCode::InvalidEvent, format!("event: {error}")))?;
    let handler = &action.spec.handler;
    if request.send && !handler.can_be_tried() {
        return Err(ApiError::new(
            ErrorCode::NotSendable,
            format!(
                "a test delivery needs a handler that only sends (a webhook, an API request, an \
                 email); this action's is {}",
                handler.kind()
            ),
        ));
    }
    let secrets = state
        .store
        .secret_values(tenant, &handler.secret_names())
        .await
        .map_err(|error| {
            tracing::error!(error = format!("{error:#}"), "secrets could not be read");
            ApiError::unavailable()
        })?;
    let job = ExecutionJob {
        step: None,
        execution_id: ExecutionId::new(),
        tenant_id: action.tenant_id,
        action_id: action.id,
        attempt: 1,
        event,
    };
    let samples = herald_handlers::template::Steps {
        outputs: request.outputs,
        error: None,
    };
    let context = Context {
        job: &job,
        now: state.clock.now(),
        action_name: &action.spec.matching.name,
        secrets: &secrets,
        outbound: &state.outbound,
        publisher: None,
        steps: Some(&samples),
    };
    match handler.preview(&context) {
        Ok(rendered) => report["rendered"] = rendered,
        Err(error) => {
            report["render_error"] = json!({"field": error.field, "message": error.message});
        }
    }
    if request.send {
        let performed = handler.execute(&context).await;
        report["delivery"] = attempt_view(&job, &performed);
    }
    Ok(Json(report))
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
