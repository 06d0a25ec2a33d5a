//! Executions: `GET /v1/executions` (by filter, newest first, cursor paging; with
//! `status=failed` it is the dead-letter view), `GET /v1/executions/{id}` (with its attempts),
//! `POST /v1/executions/{id}/retry`, `POST /v1/executions/{id}/cancel`, and
//! `POST /v1/executions/retry` (every execution matching a filter, carried out by the scheduler
//! page by page; follow it at `/v1/bulk-retries/{id}`).

use crate::store::cursor::encode_cursor;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_common::ids::{ActionId, ExecutionId};
use herald_common::status::ExecutionStatus;
use herald_common::store::{CancelOne, ExecutionFilter, RetryOne};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::query::{QueryParams, cursor, invalid, page_limit, time_window};
use crate::state::AppState;

/// The filters of a listing (query string) or a retry by filter (JSON body), as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    status: Option<String>,
    action_id: Option<String>,
    event_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// A listing's query string: the filters and the page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    action_id: Option<String>,
    event_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl FilterParams {
    pub fn parse(self) -> ApiResult<ExecutionFilter> {
        let statuses = ExecutionStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (since, until) = time_window(self.since.as_deref(), self.until.as_deref())?;
        let filter = ExecutionFilter {
            status: self
                .status
                .as_deref()
                .map(|s| ExecutionStatus::parse(s).ok_or_else(|| invalid("status", &statuses)))
                .transpose()?,
            action_id: self
                .action_id
                .as_deref()
                .map(|a| {
                    a.parse::<ActionId>()
                        .map_err(|_| invalid("action_id", "an action id"))
                })
                .transpose()?,
            event_id: self.event_id.filter(|e| !e.is_empty()),
            since,
            until,
        };
        Ok(filter)
    }
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<Value>> {
    let limit = page_limit(params.limit.as_deref())?;
    let before = cursor(params.cursor.as_deref())?;
    let filter = FilterParams {
        status: params.status,
        action_id: params.action_id,
        event_id: params.event_id,
        since: params.since,
        until: params.until,
    }
    .parse()?;
    let page =
        crate::store::execution_list::list_executions(&state.store, tenant, &filter, before, limit)
            .await?;
    Ok(Json(json!({
        "data": page.executions,
        "next_cursor": page.next.map(|(at, id)| encode_cursor(at, &id)),
    })))
}

fn execution_id(id: &str) -> ApiResult<ExecutionId> {
    // A malformed id cannot name anything: answer as for an unknown one.
    id.parse().map_err(|_| ApiError::not_found("execution"))
}

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = execution_id(&id)?;
    let execution = state
        .store
        .get_execution(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("execution"))?;
    let attempts = state.store.attempts_of(tenant, id).await?;
    let steps = state.store.steps_of(tenant, id).await?;
    let mut body = serde_json::to_value(execution).unwrap_or_default();
    body["attempts"] = serde_json::to_value(attempts).unwrap_or_default();
    if !steps.is_empty() {
        // A workflow run: each step's state, output and attempts.
        body["steps"] = serde_json::to_value(steps).unwrap_or_default();
    }
    Ok(Json(body))
}

/// One more attempt for a finished execution, sent now (held back without being spent while
/// its destination's circuit is open).
pub async fn retry(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = execution_id(&id)?;
    match state
        .store
        .retry_execution(tenant, id, state.clock.now())
        .await?
    {
        RetryOne::Retried(execution) => {
            state
                .metrics
                .executions_retried
                .with_label_values(&["one"])
                .inc();
            Ok((StatusCode::ACCEPTED, Json(json!(execution))))
        }
        RetryOne::NotFinished(status) => Err(ApiError::new(
            ErrorCode::ExecutionNotFinished,
            format!("the execution is {status}; only a finished one can be retried"),
        )),
        RetryOne::NotFound => Err(ApiError::not_found("execution")),
    }
}

/// Stops an execution that has not finished: its waiting attempts are dropped.
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = execution_id(&id)?;
    match state.store.cancel_by_operator(tenant, id).await? {
        CancelOne::Cancelled(execution) => Ok(Json(json!(execution))),
        CancelOne::AlreadyFinished(status) => Err(ApiError::new(
            ErrorCode::ExecutionFinished,
            format!("the execution is already {status}"),
        )),
        CancelOne::NotFound => Err(ApiError::not_found("execution")),
    }
}

/// Retries every execution matching the filter (by default every `failed` one), page by page
/// in the scheduler. Answers at once with the bulk retry to follow.
pub async fn retry_by_filter(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(params): JsonBody<FilterParams>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut filter = params.parse()?;
    let status = filter.status.get_or_insert(ExecutionStatus::Failed);
    if !status.is_terminal() {
        return Err(invalid("status", "succeeded, failed or cancelled"));
    }
    let bulk = state.store.create_bulk_retry(tenant, &filter).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(bulk))))
}
