//! `POST /v1/hooks/{provider_id}`: a registered provider's webhook, verified with its scheme and
//! secret, becomes an event of the provider's tenant. No bearer key: the provider id routes the
//! delivery and its signature authenticates it. A delivery that fails verification answers 401
//! and stores nothing.

use crate::provider::EventTypeFrom;
use crate::store::providers::ProviderRecord;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use herald_common::event::{Event, IncomingEvent};
use herald_common::metrics::{Door, Received};
use herald_common::store::InsertedEvent;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::body::{check_json_body, read_bytes};
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::routes::providers::provider_id;
use crate::state::AppState;

pub async fn receive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let provider = crate::store::providers::provider_for_hook(&state.store, provider_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("provider"))?;
    // A provider's deliveries count against its tenant's request rate, like the tenant's own.
    state
        .limiter
        .check(provider.tenant_id)
        .map_err(ApiError::rate_limited)?;
    let headers = request.headers().clone();
    let body = read_bytes(request, &state).await?;
    // Verified before anything else is read, so an unsigned request learns nothing of how the
    // provider is configured.
    if let Err(error) = provider
        .spec
        .verify(&headers, &body, state.clock.now().timestamp())
    {
        tracing::debug!(provider = %provider.id, %error, "refused a provider's delivery");
        return Err(rejected(&state, error.into()));
    }
    let mut event =
        event_of(&state, &provider, &headers, &body).map_err(|e| rejected(&state, e))?;
    let _span = crate::routes::events::trace_event(
        &mut event,
        crate::routes::events::traceparent(&headers),
        "provider",
    );
    let event_id = event.id.clone();
    let answer = match state.batcher.submit(Door::Hook, event, None).await? {
        InsertedEvent::New => json!({"id": event_id, "duplicate": false}),
        InsertedEvent::Duplicate(original) => json!({"id": original, "duplicate": true}),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Counts a refused delivery as `POST /v1/events` counts a refused event, at its own door.
fn rejected(state: &AppState, error: ApiError) -> ApiError {
    state
        .metrics
        .count_events(Door::Hook, Received::Rejected, 1);
    error
}

/// The event a verified delivery carries: its type where the provider puts it (with the
/// configured prefix), the body as `data`, and the provider's own delivery id as the event id
/// so that a redelivery is a duplicate.
fn event_of(
    state: &AppState,
    provider: &ProviderRecord,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Event> {
    check_json_body(body)?;
    let data: Box<RawValue> = serde_json::from_slice(body).map_err(ApiError::invalid_json)?;
    let parsed: Value = serde_json::from_str(data.get()).map_err(ApiError::invalid_json)?;
    let spec = &provider.spec;
    let event_type = spec
        .event_type_of(headers, &parsed)
        .ok_or_else(|| event_type_missing(&spec.event_type))?;
    let incoming = IncomingEvent {
        id: spec.delivery_id(headers, &parsed),
        event_type: Some(event_type),
        source: Some(spec.event_source().to_owned()),
        time: None,
        data: Some(data),
        metadata: Some(json!({"provider_id": provider.id})),
        tenant_id: None,
    };
    Ok(incoming.validate(provider.tenant_id, None, state.clock.now(), &state.limits)?)
}

fn event_type_missing(from: &EventTypeFrom) -> ApiError {
    let place = match from {
        EventTypeFrom::Field(path) => format!("no string at the body's `{path}`"),
        EventTypeFrom::Header(name) => format!("no `{name}` header"),
    };
    ApiError::new(
        ErrorCode::EventTypeMissing,
        format!("the delivery has no event type: {place}"),
    )
}
