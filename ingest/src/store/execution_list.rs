//! Listing a tenant's executions by filter, newest first, a page at a time (keyset paging on
//! creation time and id, so a page costs the same however deep it is). With `status=failed`
//! this is the dead-letter view.

use sqlx::{Postgres, QueryBuilder};

use super::cursor::push_older_than;
use herald_common::ids::TenantId;
use herald_common::status::ExecutionStatus;
use herald_common::store::Store;
use herald_common::store::{Cursor, ExecutionFilter};
use herald_common::store::{ExecutionRecord, SELECT_EXECUTION, execution_from_row};

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    pub executions: Vec<ExecutionRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Up to `limit` executions matching `filter`, created before `before` (newest first).
pub async fn list_executions(
    store: &Store,
    tenant_id: TenantId,
    filter: &ExecutionFilter,
    before: Option<Cursor>,
    limit: i64,
) -> Result<ExecutionPage, sqlx::Error> {
    // Only the filters given go into the statement, so that each combination gets a plan
    // of its own that uses its index: an action's or an event's executions theirs, and
    // otherwise `executions_tenant_status`, one branch per status. Without the branches a
    // listing of every status would sort all of the tenant's executions for each page
    // (a fifth of a second a page at a million); with them, each branch reads at most a
    // page from the index, newest first, and the pages are merged.
    let statuses: Vec<&str> = match filter.status {
        Some(status) => vec![status.as_str()],
        None if filter.action_id.is_none() && filter.event_id.is_none() => {
            ExecutionStatus::ALL.iter().map(|s| s.as_str()).collect()
        }
        None => Vec::new(),
    };
    let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM (");
    if statuses.is_empty() {
        push_branch(&mut query, tenant_id, None, filter, before, limit);
    }
    for (n, status) in statuses.iter().enumerate() {
        if n > 0 {
            query.push(" UNION ALL ");
        }
        push_branch(&mut query, tenant_id, Some(status), filter, before, limit);
    }
    query
        .push(") AS page ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows = query.build().fetch_all(store.pool()).await?;
    let mut executions = rows
        .iter()
        .map(execution_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if executions.len() as i64 > limit {
        executions.truncate(limit as usize);
        executions.last().map(|e| (e.created_at, e.id))
    } else {
        None
    };
    Ok(ExecutionPage { executions, next })
}

/// `(SELECT ... LIMIT limit + 1)`: one status's page (or, with `None`, every status's).
fn push_branch(
    query: &mut QueryBuilder<'_, Postgres>,
    tenant_id: TenantId,
    status: Option<&str>,
    filter: &ExecutionFilter,
    before: Option<Cursor>,
    limit: i64,
) {
    query
        .push("(")
        .push(SELECT_EXECUTION)
        .push(" WHERE tenant_id = ")
        .push_bind(tenant_id);
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status.to_owned());
    }
    if let Some(action_id) = filter.action_id {
        query.push(" AND action_id = ").push_bind(action_id);
    }
    if let Some(event_id) = &filter.event_id {
        query.push(" AND event_id = ").push_bind(event_id.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND created_at < ").push_bind(until);
    }
    if let Some((at, id)) = before {
        push_older_than(query, "created_at", at, id);
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1)
        .push(")");
}
