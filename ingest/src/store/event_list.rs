//! Listing a tenant's events by type, source and arrival time, newest first, a page at a time
//! (keyset paging on arrival time and id, through the `(tenant_id, received_at)` index, so a
//! page costs the same however deep it is).

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::cursor::push_older_than;
use herald_common::ids::TenantId;
use herald_common::store::Store;
use herald_common::store::{STORED_EVENT_COLUMNS, StoredEvent, stored_event_from_row};

/// Which events to list; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// An exact type, or a prefix ending in `*` (`invoice.*` lists every `invoice.` type).
    pub event_type: Option<String>,
    pub source: Option<String>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    /// Received before.
    pub until: Option<DateTime<Utc>>,
}

/// Where a page ends: the last event's arrival time and id.
pub type EventCursor = (DateTime<Utc>, String);

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<EventCursor>,
}

/// Up to `limit` events matching `filter`, received before `before` (newest first).
pub async fn list_events(
    store: &Store,
    tenant_id: TenantId,
    filter: &EventFilter,
    before: Option<EventCursor>,
    limit: i64,
) -> Result<EventPage, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE tenant_id = "
    ));
    query.push_bind(tenant_id);
    match filter.event_type.as_deref().map(type_prefix) {
        Some(Ok(prefix)) => {
            query
                .push(" AND type LIKE ")
                .push_bind(format!("{}%", escape_like(prefix)));
        }
        Some(Err(exact)) => {
            query.push(" AND type = ").push_bind(exact.to_owned());
        }
        None => {}
    }
    if let Some(source) = &filter.source {
        query.push(" AND source = ").push_bind(source.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND received_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND received_at < ").push_bind(until);
    }
    if let Some((at, id)) = before {
        push_older_than(&mut query, "received_at", at, id);
    }
    query
        .push(" ORDER BY received_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
    let rows = query.build().fetch_all(store.pool()).await?;
    let mut events = rows
        .iter()
        .map(stored_event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if events.len() as i64 > limit {
        events.truncate(limit as usize);
        events.last().map(|e| (e.received_at, e.id.clone()))
    } else {
        None
    };
    Ok(EventPage { events, next })
}

/// `Ok(prefix)` for a pattern ending in `*`, `Err(exact)` otherwise.
fn type_prefix(pattern: &str) -> Result<&str, &str> {
    pattern.strip_suffix('*').ok_or(pattern)
}

/// A LIKE pattern that matches `text` literally.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_star_is_a_prefix_and_like_characters_are_literal() {
        let cases = [
            ("invoice.*", Ok("invoice.")),
            ("invoice.paid", Err("invoice.paid")),
            ("*", Ok("")),
        ];
        for (pattern, expected) in cases {
            assert_eq!(type_prefix(pattern), expected, "{pattern}");
        }
        assert_eq!(escape_like("a_b%c\\"), "a\\_b\\%c\\\\");
    }
}
