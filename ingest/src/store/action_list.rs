//! Listing a tenant's actions by filter, by name, a page at a time (keyset paging on the name,
//! which is unique within a tenant).

use sqlx::{Postgres, QueryBuilder};

use herald_common::ids::TenantId;
use herald_common::store::Store;
use herald_common::store::{ACTION_COLUMNS, action_from_row};
use herald_handlers::Action;

/// What a listing asks for. Every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub enabled: Option<bool>,
    /// `webhook`, `publish`, `log`.
    pub handler_type: Option<String>,
    /// Actions with a pattern that matches this event type (wildcards included).
    pub event_type: Option<String>,
    /// Case-insensitive text in the name or the description.
    pub search: Option<String>,
    pub include_deleted: bool,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ActionPage {
    pub actions: Vec<Action>,
    /// The last name of this page, where the next one starts; `None` on the last page.
    pub next: Option<String>,
}

/// The regular expression an event-type pattern stands for, built in SQL from the pattern
/// column: segments hold only `[A-Za-z0-9_-]` (checked when saved), so nothing needs escaping
/// but the dots. `*` is one segment; `#` is any number, with its dot when it is not alone.
const PATTERN_AS_REGEX: &str = "'^' || replace(replace(replace(replace(\
     replace(p, '.', '\\.'), '*', '[^.]+'), '\\.#', '(\\.[^.]+)*'), '#\\.', '([^.]+\\.)*'), \
     '#', '.*') || '$'";

/// `text` for a LIKE pattern that matches it literally anywhere.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Up to `limit` of the tenant's actions (never a delivery's) matching `filter`, ordered by
/// name, after the name `after`.
pub async fn list_actions(
    store: &Store,
    tenant_id: TenantId,
    filter: &ActionFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<ActionPage, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {ACTION_COLUMNS} FROM actions"));
    query
        .push(" WHERE tenant_id = ")
        .push_bind(tenant_id)
        .push(" AND NOT one_off");
    if !filter.include_deleted {
        query.push(" AND deleted_at IS NULL");
    }
    if let Some(enabled) = filter.enabled {
        query.push(" AND enabled = ").push_bind(enabled);
    }
    if let Some(kind) = &filter.handler_type {
        query.push(" AND handler_type = ").push_bind(kind.clone());
    }
    if let Some(event_type) = &filter.event_type {
        query
            .push(" AND EXISTS (SELECT 1 FROM unnest(event_types) AS p WHERE ")
            .push_bind(event_type.clone())
            .push(format!(" ~ ({PATTERN_AS_REGEX}))"));
    }
    if let Some(text) = &filter.search {
        let pattern = contains_pattern(text);
        query
            .push(" AND (name ILIKE ")
            .push_bind(pattern.clone())
            .push(" OR description ILIKE ")
            .push_bind(pattern)
            .push(")");
    }
    if let Some(after) = after {
        query
            .push(" AND name COLLATE \"C\" > ")
            .push_bind(after.to_owned());
    }
    query
        .push(" ORDER BY name COLLATE \"C\" LIMIT ")
        .push_bind(limit + 1);
    let rows = query.build().fetch_all(store.pool()).await?;
    let mut actions = rows
        .iter()
        .map(|row| action_from_row(row, store.keys()))
        .collect::<Result<Vec<_>, _>>()?;
    let next = if actions.len() as i64 > limit {
        actions.truncate(limit as usize);
        actions.last().map(|a| a.spec.matching.name.clone())
    } else {
        None
    };
    Ok(ActionPage { actions, next })
}
