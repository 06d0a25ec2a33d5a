//! `POST /v1/deliveries`: one signed webhook to a URL given in the request, with no matching,
//! now or at `scheduled_at`. It becomes an execution like any other (retries, circuit breaker,
//! audit, operator retry and cancel); the answer carries its id.

use crate::store::deliveries::{DeliveryCreated, NewDelivery};
use axum::Json;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use herald_common::action::ActionError;
use herald_common::event::IncomingEvent;
use herald_common::json_bounds;
use herald_common::store::ActionWriteError;
use herald_handlers::{ActionSpec, parse_action};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::routes::events::idempotency_key;
use crate::state::AppState;

/// Farthest ahead a delivery may be scheduled.
const MAX_SCHEDULE_AHEAD_DAYS: i64 = 30;
/// The event type of a delivery's payload unless the request names one.
const DEFAULT_TYPE: &str = "delivery";

/// The request, as the contract names its fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRequest {
    url: String,
    payload: Box<RawValue>,
    #[serde(default)]
    headers: Option<Value>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    max_attempts: Option<Value>,
    #[serde(default)]
    scheduled_at: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// The event type the webhook body carries.
    #[serde(default, rename = "type")]
    event_type: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidDelivery,
        format!("`{field}` {}", message.into()),
    )
}

/// The destination, secret, headers and retry policy, checked as an action's would be.
fn action_of(request: &DeliveryRequest) -> ApiResult<ActionSpec> {
    let mut handler = json!({"type": "webhook", "url": request.url});
    if let Some(headers) = &request.headers {
        handler["headers"] = headers.clone();
    }
    if let Some(secret) = &request.secret {
        handler["secret"] = json!(secret);
    }
    let mut retry = json!({"max_attempts": 5, "delays_s": [30, 60, 300, 900, 3600]});
    if let Some(max_attempts) = &request.max_attempts {
        retry["max_attempts"] = max_attempts.clone();
    }
    let spec = json!({
        "name": "delivery",
        "event_types": [DEFAULT_TYPE],
        "handler": handler,
        "retry": retry,
    });
    let parsed = parse_action(&spec).and_then(|mut spec| {
        spec.keep_stored(None)?;
        Ok(spec)
    });
    parsed.map_err(|ActionError { field, message }| {
        // Name the request's field, not the action's.
        let field = match field.as_str() {
            "handler.url" => "url".to_owned(),
            "handler.secret" => "secret".to_owned(),
            "retry.max_attempts" => "max_attempts".to_owned(),
            other => other.strip_prefix("handler.").unwrap_or(other).to_owned(),
        };
        invalid(&field, message)
    })
}

fn due_at(scheduled_at: Option<&str>, now: DateTime<Utc>) -> ApiResult<DateTime<Utc>> {
    let Some(text) = scheduled_at else {
        return Ok(now);
    };
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid("scheduled_at", "must be an RFC 3339 time"))?
        .with_timezone(&Utc);
    if at > now + chrono::Duration::days(MAX_SCHEDULE_AHEAD_DAYS) {
        return Err(invalid(
            "scheduled_at",
            format!("must be at most {MAX_SCHEDULE_AHEAD_DAYS} days ahead"),
        ));
    }
    // A time already past means "now".
    Ok(at.max(now))
}

pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    JsonBody(request): JsonBody<DeliveryRequest>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let now = state.clock.now();
    // Checked here too, so that a refusal names the request's field rather than the event's.
    json_bounds::check(
        request.payload.get().as_bytes(),
        state.limits.max_json_depth,
    )
    .map_err(|refusal| ApiError::json_refused(&refusal, "payload"))?;
    let action = action_of(&request)?;
    let due_at = due_at(request.scheduled_at.as_deref(), now)?;
    // The header, as for events, or the contract's body field.
    let key = match idempotency_key(&headers)? {
        Some(key) => Some(key),
        None => request.idempotency_key.clone(),
    };
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(invalid("idempotency_key", "must be 1 to 255 characters"));
    }
    let event = IncomingEvent {
        id: None,
        event_type: Some(
            request
                .event_type
                .clone()
                .unwrap_or_else(|| DEFAULT_TYPE.into()),
        ),
        source: None,
        time: None,
        data: Some(request.payload),
        metadata: None,
        tenant_id: None,
    }
    .validate(tenant, None, now, &state.limits)?;
    let delivery = NewDelivery {
        event,
        idempotency_key: key,
        action,
        due_at,
    };
    let created = crate::store::deliveries::create_delivery(&state.store, &delivery)
        .await
        .map_err(|error| match error {
            ActionWriteError::Database(error) => ApiError::from(error),
            ActionWriteError::Seal(error) => ApiError::from(error),
            // A delivery's action has a fresh unique name, is checked before, and is never
            // updated.
            ActionWriteError::NameTaken(_)
            | ActionWriteError::RevisionMismatch(_)
            | ActionWriteError::Invalid { .. } => ApiError::unavailable(),
        })?;
    // A delivery is followed as its execution (a duplicate points at the first one's).
    let execution = match &created {
        DeliveryCreated::New { execution_id, .. } => Some(*execution_id),
        DeliveryCreated::Duplicate { execution_id, .. } => *execution_id,
    };
    let mut answer_headers = HeaderMap::new();
    if let Some(location) =
        execution.and_then(|id| HeaderValue::from_str(&format!("/v1/executions/{id}")).ok())
    {
        answer_headers.insert(LOCATION, location);
    }
    let body = match created {
        DeliveryCreated::New { execution_id, .. } => {
            let mut body = json!({
                "id": execution_id,
                "event_id": delivery.event.id,
                "status": "pending",
                "scheduled_at": due_at,
                "duplicate": false,
            });
            // A secret Herald made up is shown once, so that the receiver can verify.
            if request.secret.is_none()
                && let Some(hook) = delivery.action.handler.webhook()
            {
                body["secret"] = json!(hook.secrets.first().map(|s| s.text()));
            }
            body
        }
        DeliveryCreated::Duplicate {
            event_id,
            execution_id,
        } => json!({"id": execution_id, "event_id": event_id, "duplicate": true}),
    };
    Ok((StatusCode::ACCEPTED, answer_headers, Json(body)))
}
