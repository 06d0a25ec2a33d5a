//! `POST /v1/events` (Herald's JSON or CloudEvents), `POST /v1/events/batch`, `GET /v1/events`
//! (by type, source and time, newest first, cursor paging) and `GET /v1/events/{id}`. A single event that matches sync actions is answered 200 with their
//! results (see `sync_results`); everything else 202 as soon as it is stored.

use std::time::Duration;

use crate::store::cursor::encode_cursor;
use crate::store::event_list::EventFilter;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use herald_common::event::{Event, EventId, IncomingEvent};
use herald_common::ids::TenantId;
use herald_common::json_bounds;
use herald_common::metrics::{Door, Received};
use herald_common::store::InsertedEvent;
use serde::Deserialize;
use serde_json::{Value, json};

use herald_common::trace::{HeraldSpan, KeyValue, SpanKind, TRACEPARENT};

use crate::auth::Tenant;
use crate::body::{check_json_body, read_bytes};
use crate::cloudevents;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::query::{QueryParams, cursor, page_limit, time_window};
use crate::state::AppState;
use crate::sync_results::{sync_actions, wait_for_results};

/// Longest accepted `Idempotency-Key`.
const MAX_IDEMPOTENCY_KEY: usize = 255;

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header, checked.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidIdempotencyKey,
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })?;
    Ok(Some(text.to_owned()))
}

/// What a request body holds: one event, or a batch (answered with one result per event).
enum Incoming {
    One(IncomingEvent),
    Many(Vec<IncomingEvent>),
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
}

fn json_value(bytes: &[u8]) -> ApiResult<Value> {
    check_json_body(bytes)?;
    serde_json::from_slice(bytes).map_err(ApiError::invalid_json)
}

/// Reads a body by its content type: Herald's JSON, or a CloudEvent in any of the three modes.
/// `batch` is the route's expectation for Herald's own JSON (an array, or one object).
fn read_incoming(headers: &HeaderMap, bytes: &[u8], batch: bool) -> ApiResult<Incoming> {
    let media = media_type(headers);
    match media.as_deref() {
        Some(cloudevents::STRUCTURED) => {
            Ok(Incoming::One(cloudevents::structured(json_value(bytes)?)?))
        }
        Some(cloudevents::BATCH) => Ok(Incoming::Many(cloudevents::batch(json_value(bytes)?)?)),
        _ if headers.contains_key(cloudevents::SPECVERSION_HEADER) => {
            Ok(Incoming::One(cloudevents::binary(headers, bytes)?))
        }
        None => read_json(bytes, batch),
        Some(m) if m == "application/json" || m.ends_with("+json") => read_json(bytes, batch),
        Some(other) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "content type {other:?} is not accepted; send application/json or a CloudEvent"
            ),
        )),
    }
}

fn read_json(bytes: &[u8], batch: bool) -> ApiResult<Incoming> {
    // Any depth here: `data` is kept raw and held to `ingest.max_json_depth` when the event is
    // validated (a refusal then names the configured bound), and serde bounds the rest.
    json_bounds::check(bytes, usize::MAX)?;
    if batch {
        serde_json::from_slice(bytes)
            .map(Incoming::Many)
            .map_err(ApiError::invalid_json)
    } else {
        serde_json::from_slice(bytes)
            .map(Incoming::One)
            .map_err(ApiError::invalid_json)
    }
}

/// Checks one event as it came in; `at` names it within a batch.
fn accept(
    state: &AppState,
    tenant: TenantId,
    incoming: IncomingEvent,
    at: Option<usize>,
) -> ApiResult<Event> {
    let name = |message: String| match at {
        Some(i) => format!("events[{i}]: {message}"),
        None => message,
    };
    if incoming.tenant_id.is_some() {
        return Err(ApiError::new(
            ErrorCode::TenantIdNotAllowed,
            name("`tenant_id` comes from the API key and must not be in the body".into()),
        ));
    }
    incoming
        .validate(tenant, None, state.clock.now(), &state.limits)
        .map_err(|error| {
            state
                .metrics
                .count_events(Door::Http, Received::Rejected, 1);
            let mut error = ApiError::from(error);
            error.message = name(error.message);
            error
        })
}

/// The caller's trace context, if it sent one.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get(TRACEPARENT).and_then(|v| v.to_str().ok())
}

/// Starts the event's trace at the door it came in by (a child of the caller's span, if it
/// sent a `traceparent`); the event carries the context on. The span lasts until dropped,
/// once the event is stored.
pub(crate) fn trace_event(
    event: &mut Event,
    parent: Option<&str>,
    door: &'static str,
) -> HeraldSpan {
    let span = HeraldSpan::start(
        "herald.ingest",
        SpanKind::Server,
        parent,
        vec![
            KeyValue::new("herald.door", door),
            KeyValue::new("herald.event_id", event.id.as_str().to_owned()),
            KeyValue::new("herald.event_type", event.event_type.as_str().to_owned()),
        ],
    );
    event.trace = Some(span.traceparent());
    span
}

fn result(id: EventId, outcome: InsertedEvent) -> Value {
    match outcome {
        InsertedEvent::New => json!({"id": id, "duplicate": false}),
        InsertedEvent::Duplicate(original) => json!({"id": original, "duplicate": true}),
    }
}

/// `POST /v1/events`: one event as Herald's JSON or a CloudEvent (structured or binary), or a
/// CloudEvents batch.
pub async fn create(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    receive(&state, tenant, request, false).await
}

/// `POST /v1/events/batch`: a JSON array of events (or a CloudEvents batch), stored together
/// or not at all; one result per event, in order.
pub async fn create_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    request: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    receive(&state, tenant, request, true).await
}

/// Reads a body (Herald's JSON is an array when `batch`) and stores what it holds; a single
/// event answers with its own result, a batch with one per event.
async fn receive(
    state: &AppState,
    tenant: TenantId,
    request: Request,
    batch: bool,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let headers = request.headers().clone();
    let bytes = read_bytes(request, state).await?;
    match read_incoming(&headers, &bytes, batch)? {
        Incoming::One(incoming) if !batch => {
            let key = idempotency_key(&headers)?;
            let mut event = accept(state, tenant, incoming, None)?;
            let _span = trace_event(&mut event, traceparent(&headers), "http");
            let id = event.id.clone();
            let sync = sync_actions(&state.engine, &event);
            let outcome = state.batcher.submit(Door::Http, event, key).await?;
            if sync.is_empty() || matches!(outcome, InsertedEvent::Duplicate(_)) {
                return Ok((StatusCode::ACCEPTED, Json(result(id, outcome))));
            }
            let timeout = Duration::from_millis(state.config.sync_timeout_ms);
            let (results, timed_out) =
                wait_for_results(&state.store, tenant, id.as_str(), &sync, timeout).await?;
            let mut body = result(id, outcome);
            body["results"] = json!(results);
            body["timed_out"] = json!(timed_out);
            Ok((StatusCode::OK, Json(body)))
        }
        Incoming::One(incoming) => store_batch(state, tenant, &headers, vec![incoming]).await,
        Incoming::Many(events) => store_batch(state, tenant, &headers, events).await,
    }
}

async fn store_batch(
    state: &AppState,
    tenant: TenantId,
    headers: &HeaderMap,
    batch: Vec<IncomingEvent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // One key cannot name many events, and ignoring it would let a client believe its retry
    // is safe: batch items are deduplicated by their own `id` instead.
    if headers.contains_key(IDEMPOTENCY_KEY) {
        return Err(ApiError::new(
            ErrorCode::IdempotencyKeyNotAllowed,
            "Idempotency-Key names one event; a batch's events are deduplicated by their own `id`",
        ));
    }
    let max = state.config.max_batch_events;
    if batch.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBatch,
            "a batch must hold at least one event",
        ));
    }
    if batch.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "a batch holds at most {max} events; this one has {}",
                batch.len()
            ),
        ));
    }
    // Every event is checked before any is stored: a bad one refuses the whole batch.
    let events = batch
        .into_iter()
        .enumerate()
        .map(|(i, incoming)| accept(state, tenant, incoming, Some(i)))
        .collect::<ApiResult<Vec<Event>>>()?;
    let mut events = events;
    let _spans: Vec<HeraldSpan> = events
        .iter_mut()
        .map(|event| trace_event(event, traceparent(headers), "http"))
        .collect();
    let ids: Vec<EventId> = events.iter().map(|e| e.id.clone()).collect();
    let outcomes = state
        .batcher
        .submit_all(Door::Http, events.into_iter().map(|e| (e, None)).collect())
        .await?;
    let data: Vec<Value> = ids
        .into_iter()
        .zip(outcomes)
        .map(|(id, o)| result(id, o))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"data": data}))))
}

/// A listing's query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(params.limit.as_deref())?;
    let before = cursor(params.cursor.as_deref())?;
    let (since, until) = time_window(params.since.as_deref(), params.until.as_deref())?;
    let filter = EventFilter {
        event_type: params.event_type.filter(|t| !t.is_empty()),
        source: params.source.filter(|s| !s.is_empty()),
        since,
        until,
    };
    let page =
        crate::store::event_list::list_events(&state.store, tenant, &filter, before, limit).await?;
    Ok(Json(json!({
        "data": page.events,
        "next_cursor": page.next.as_ref().map(|(at, id)| encode_cursor(*at, id)),
    })))
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
