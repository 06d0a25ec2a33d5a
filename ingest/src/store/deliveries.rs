//! One-off deliveries (`POST /v1/deliveries`): a webhook to a URL given in the request, with no
//! matching. Stored in one transaction as an event (already matched, so it is never published
//! to the matchers), an action of its own that matches nothing and carries the destination,
//! secret and retry policy, a pending execution, and its first job at the scheduler, due at
//! `scheduled_at` (or now). From there it is an execution like any other: retried, circuit
//! broken, recorded, retried or cancelled by an operator.

use chrono::{DateTime, Utc};

use herald_common::event::{Event, EventId};
use herald_common::ids::{ActionId, ExecutionId};
use herald_common::messages::{DelayedJob, ExecutionJob, Lane};
use herald_common::store::NewExecution;
use herald_common::store::Store;
use herald_common::store::insert_delayed_jobs;
use herald_common::store::{ActionWriteError, insert_action};
use herald_common::store::{insert_matched_event, original_event_id};
use herald_handlers::ActionSpec;

/// A delivery about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The payload as an event of the tenant.
    pub event: Event,
    pub idempotency_key: Option<String>,
    /// Destination, secret, headers and retry policy; its name and event types are ignored.
    pub action: ActionSpec,
    /// When the first attempt is due.
    pub due_at: DateTime<Utc>,
}

/// What storing a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryCreated {
    New {
        execution_id: ExecutionId,
        action_id: ActionId,
    },
    /// The idempotency key (or event id) was used before: this is the first delivery's.
    Duplicate {
        event_id: EventId,
        execution_id: Option<ExecutionId>,
    },
}

pub async fn create_delivery(
    store: &Store,
    delivery: &NewDelivery,
) -> Result<DeliveryCreated, ActionWriteError> {
    let event = &delivery.event;
    let mut tx = store.pool().begin().await?;
    let key = delivery.idempotency_key.as_deref();
    if !insert_matched_event(&mut tx, event, key, 1).await? {
        let original = original_event_id(&mut tx, event.tenant_id, &event.id, key)
            .await?
            .unwrap_or_else(|| event.id.clone());
        let execution_id: Option<ExecutionId> = sqlx::query_scalar(
            "SELECT id FROM executions WHERE tenant_id = $1 AND event_id = $2 LIMIT 1",
        )
        .bind(event.tenant_id)
        .bind(original.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        return Ok(DeliveryCreated::Duplicate {
            event_id: original,
            execution_id,
        });
    }
    let mut action = delivery.action.clone();
    action.matching.name = format!("delivery {}", event.id.as_str());
    action.matching.event_types = Vec::new();
    let action = insert_action(&mut *tx, store.keys(), event.tenant_id, &action, true).await?;
    let execution = NewExecution {
        id: ExecutionId::new(),
        tenant_id: event.tenant_id,
        event_id: event.id.clone(),
        action_id: action.id,
        max_attempts: action.spec.matching.retry.max_attempts() as i32,
        priority: action.spec.matching.priority.0,
    };
    Store::insert_executions(&mut tx, std::slice::from_ref(&execution)).await?;
    let job = ExecutionJob {
        step: None,
        execution_id: execution.id,
        tenant_id: event.tenant_id,
        action_id: action.id,
        attempt: 1,
        event: event.clone(),
    };
    let first = DelayedJob::attempt(job, Lane::First, None, delivery.due_at);
    insert_delayed_jobs(&mut *tx, &[first]).await?;
    tx.commit().await?;
    Ok(DeliveryCreated::New {
        execution_id: execution.id,
        action_id: action.id,
    })
}
