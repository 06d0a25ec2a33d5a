//! Changing actions: `PATCH /v1/actions/{id}` (a JSON merge patch, validated as a whole) and
//! `PUT /v1/actions` (the tenant's whole set, actions as code).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use herald_common::ids::TenantId;
use herald_handlers::{Action, ActionSpec, parse_action};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::merge_patch::patch_action;
use crate::routes::actions::{Shown, check_budget, check_handlers, find, shown};
use crate::state::AppState;
use crate::store::action_list::ActionFilter;
use crate::store::action_set::{MAX_ACTION_SET, SetReport};

/// The revision an update is based on, from `If-Match` (`"3"` or `3`).
fn expected_revision(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidIfMatch,
                "If-Match must hold the action's revision, for example \"3\"",
            )
        })
}

/// Wildcards and regexes an action costs while it can match.
fn live_cost(spec: &ActionSpec, deleted: bool) -> usize {
    if spec.matching.enabled && !deleted {
        spec.costly_parts()
    } else {
        0
    }
}

/// `PATCH /v1/actions/{id}`: the patch is merged into the action's JSON and the result is
/// validated as a new action would be. Signing secrets are kept unless the patch names one.
pub async fn update(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult<Shown> {
    if !patch.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidAction,
            "$: a patch must be a JSON object",
        ));
    }
    let expected = expected_revision(&headers)?;
    let current = find(&state, tenant, &id).await?;
    let mut merged = serde_json::to_value(&current.spec).unwrap_or_default();
    patch_action(&mut merged, &patch);
    let mut spec = parse_action(&merged)?;
    spec.keep_stored(Some(&current.spec))?;
    check_handlers(&state, tenant, [(String::new(), &spec)]).await?;
    let deleted = current.deleted_at.is_some();
    let (before, after) = (live_cost(&current.spec, deleted), live_cost(&spec, deleted));
    if after > before {
        check_budget(&state, tenant, after - before)?;
    }
    let record = state
        .store
        .update_action(tenant, current.id, &spec, expected)
        .await?
        .ok_or_else(|| ApiError::not_found("action"))?;
    Ok(shown(&record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSet {
    actions: Vec<Value>,
    /// Soft-delete live actions the set does not name.
    #[serde(default)]
    prune: bool,
}

/// Parses every action of a set before anything is written: one bad action refuses the set.
fn desired_actions(set: &[Value]) -> ApiResult<Vec<ActionSpec>> {
    if set.len() > MAX_ACTION_SET {
        return Err(ApiError::new(
            ErrorCode::TooManyActions,
            format!(
                "a set holds at most {MAX_ACTION_SET} actions; this one has {}",
                set.len()
            ),
        ));
    }
    let mut desired: Vec<ActionSpec> = Vec::with_capacity(set.len());
    for (i, value) in set.iter().enumerate() {
        let spec = parse_action(value).map_err(|error| {
            let mut error = ApiError::from(error);
            error.message = format!("actions[{i}].{}", error.message);
            error
        })?;
        let name = &spec.matching.name;
        if desired.iter().any(|d| &d.matching.name == name) {
            return Err(ApiError::new(
                ErrorCode::DuplicateName,
                format!("actions[{i}]: the name {name:?} appears twice"),
            ));
        }
        desired.push(spec);
    }
    Ok(desired)
}

/// The tenant's wildcard and regex cost once `desired` is applied.
fn cost_after(current: &[Action], desired: &[ActionSpec], prune: bool) -> usize {
    let existing = |name: &str| current.iter().find(|a| a.spec.matching.name == name);
    let in_set: usize = desired
        .iter()
        .map(|d| match existing(&d.matching.name) {
            Some(a) if a.deleted_at.is_some() => 0,
            _ => live_cost(d, false),
        })
        .sum();
    let outside: usize = if prune {
        0
    } else {
        current
            .iter()
            .filter(|a| {
                !desired
                    .iter()
                    .any(|d| d.matching.name == a.spec.matching.name)
            })
            .map(|a| live_cost(&a.spec, a.deleted_at.is_some()))
            .sum()
    };
    in_set + outside
}

/// `PUT /v1/actions`: `{"actions": [...], "prune": false}`, applied by name in one
/// transaction; answers what was created, updated, left unchanged, skipped because it is
/// soft-deleted, and (with `prune`) deleted.
pub async fn apply_set(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    JsonBody(set): JsonBody<ActionSet>,
) -> ApiResult<Json<Value>> {
    let desired = desired_actions(&set.actions)?;
    let indexed = desired
        .iter()
        .enumerate()
        .map(|(i, spec)| (format!("actions[{i}]."), spec));
    check_handlers(&state, tenant, indexed).await?;
    check_set_budget(&state, tenant, &desired, set.prune).await?;
    let report: SetReport =
        crate::store::action_set::apply_action_set(&state.store, tenant, &desired, set.prune)
            .await?;
    Ok(Json(json!(report)))
}

async fn check_set_budget(
    state: &AppState,
    tenant: TenantId,
    desired: &[ActionSpec],
    prune: bool,
) -> ApiResult<()> {
    let everything = ActionFilter {
        include_deleted: true,
        ..ActionFilter::default()
    };
    let current = crate::store::action_list::list_actions(
        &state.store,
        tenant,
        &everything,
        None,
        i64::MAX - 1,
    )
    .await?
    .actions;
    let held = state.engine.costly_parts(tenant);
    let after = cost_after(&current, desired, prune);
    if after > held {
        check_budget(state, tenant, after - held)?;
    }
    Ok(())
}
