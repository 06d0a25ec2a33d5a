//! Sync mode: a `POST /v1/events` whose event matches sync actions waits, up to
//! `ingest.sync_timeout_ms`, for their first results and answers with them. The event still
//! takes the ordinary path (stored, matched, executed, recorded); ingest only finds out which
//! sync actions it matches, from its own copy of the live actions, and watches their
//! executions. Async actions matched by the same event are queued as always.

use std::time::Duration;

use herald_common::action::ActionMode;
use herald_common::event::Event;
use herald_common::ids::{ActionId, TenantId};
use herald_common::status::ExecutionStatus;
use herald_common::store::{ExecutionRecord, Store};
use herald_engine::{Engine, EventRef};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Longest pause between two looks at the executions.
const MAX_POLL: Duration = Duration::from_millis(25);

/// The sync actions `event` matches now, in dispatch order. Most tenants have none, and
/// their events are not matched here at all (the matcher does that once).
pub fn sync_actions(engine: &Engine, event: &Event) -> Vec<ActionId> {
    if !engine.has_sync_actions(event.tenant_id) {
        return Vec::new();
    }
    let mut matched = Vec::new();
    if engine.matches(&EventRef::of(event), &mut matched).is_err() {
        return Vec::new();
    }
    matched
        .into_iter()
        .filter(|m| m.mode == ActionMode::Sync)
        .map(|m| m.id)
        .collect()
}

/// Whether an execution has a result to show: it finished, or its first attempt is recorded
/// and it waits for a retry (a caller waiting seconds would not wait for a retry's minutes).
fn settled(execution: &ExecutionRecord) -> bool {
    execution.status.is_terminal()
        || (execution.status == ExecutionStatus::RetryScheduled && execution.attempts > 0)
}

/// The results of `actions`' executions for `event_id` once all are settled, or as they are
/// at `timeout`. The second value says whether the time ran out.
pub async fn wait_for_results(
    store: &Store,
    tenant: TenantId,
    event_id: &str,
    actions: &[ActionId],
    timeout: Duration,
) -> Result<(Vec<Value>, bool), sqlx::Error> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let executions: Vec<ExecutionRecord> = store
            .executions_of_event(tenant, event_id)
            .await?
            .into_iter()
            .filter(|e| actions.contains(&e.action_id))
            .collect();
        let all_there = executions.len() == actions.len();
        // An action changed between ingest's look and the matcher's: once the event is
        // matched, what was recorded is all there will be.
        let matched = all_there || is_matched(store, tenant, event_id).await?;
        let done = matched && executions.iter().all(settled);
        if done || Instant::now() >= deadline {
            let results = describe(store, tenant, actions, &executions, matched).await?;
            return Ok((results, !done));
        }
        tokio::time::sleep(pause.min(deadline - Instant::now())).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

async fn is_matched(store: &Store, tenant: TenantId, event_id: &str) -> Result<bool, sqlx::Error> {
    Ok(store
        .get_event(tenant, event_id)
        .await?
        .is_some_and(|e| e.matched_at.is_some()))
}

async fn describe(
    store: &Store,
    tenant: TenantId,
    actions: &[ActionId],
    executions: &[ExecutionRecord],
    matched: bool,
) -> Result<Vec<Value>, sqlx::Error> {
    let mut results = Vec::with_capacity(actions.len());
    for action in actions {
        let Some(execution) = executions.iter().find(|e| e.action_id == *action) else {
            // Matched without it (it changed meanwhile): not a result of this event. Not
            // matched yet when time ran out: it may still come.
            if !matched {
                results.push(json!({"action_id": action, "execution_id": null,
                    "status": "pending", "attempts": 0, "response": null}));
            }
            continue;
        };
        let last = store
            .attempts_of(tenant, execution.id)
            .await?
            .into_iter()
            .next_back();
        results.push(json!({
            "action_id": action,
            "execution_id": execution.id,
            "status": execution.status,
            "attempts": execution.attempts,
            "response": last,
        }));
    }
    Ok(results)
}
