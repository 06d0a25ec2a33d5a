//! Sequential priorities: what an action with `after_lower_priorities` waits for, the
//! executions of its event with a lower priority number.

use uuid::Uuid;

use super::Store;
use crate::event::EventId;
use crate::ids::{ExecutionId, TenantId};
use crate::status::ExecutionStatus;

/// Where the executions of an event with a lower priority number are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// All ended succeeded (or there are none).
    Succeeded,
    /// One or more has not ended yet.
    Running,
    /// All ended, and `execution` did not succeed (`status`: failed or cancelled).
    NotSucceeded {
        execution: ExecutionId,
        status: ExecutionStatus,
    },
}

impl Store {
    /// The executions of `event_id` whose priority number is below `priority`. The matcher
    /// records every execution of an event in one statement before any job goes out, so
    /// none is missing when a job asks.
    pub async fn earlier_executions(
        &self,
        tenant_id: TenantId,
        event_id: &EventId,
        priority: i32,
    ) -> Result<Earlier, sqlx::Error> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, status FROM executions
             WHERE tenant_id = $1 AND event_id = $2 AND priority < $3
             ORDER BY priority, created_at",
        )
        .bind(tenant_id)
        .bind(event_id.as_str())
        .bind(priority)
        .fetch_all(&self.pool)
        .await?;
        let mut failed = None;
        for (id, status) in rows {
            let status = ExecutionStatus::parse(&status).unwrap_or(ExecutionStatus::Pending);
            if !status.is_terminal() {
                return Ok(Earlier::Running);
            }
            if status != ExecutionStatus::Succeeded && failed.is_none() {
                failed = Some(Earlier::NotSucceeded {
                    execution: id.into(),
                    status,
                });
            }
        }
        Ok(failed.unwrap_or(Earlier::Succeeded))
    }
}
