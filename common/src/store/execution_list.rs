//! Listing a tenant's executions by filter, newest first, a page at a time (keyset paging on
//! creation time and id, so a page costs the same however deep it is). With `status=failed`
//! this is the dead-letter view.

use chrono::{DateTime, Utc};

use super::Store;
use super::executions::{ExecutionRecord, SELECT_EXECUTION, execution_from_row};
use super::requeue::{Cursor, ExecutionFilter};
use crate::ids::{ExecutionId, TenantId};

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ExecutionPage {
    pub executions: Vec<ExecutionRecord>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

impl Store {
    /// Up to `limit` executions matching `filter`, created before `before` (newest first).
    pub async fn list_executions(
        &self,
        tenant_id: TenantId,
        filter: &ExecutionFilter,
        before: Option<Cursor>,
        limit: i64,
    ) -> Result<ExecutionPage, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "{SELECT_EXECUTION}
             WHERE tenant_id = $1
               AND ($2::text IS NULL OR status = $2)
               AND ($3::uuid IS NULL OR action_id = $3)
               AND ($4::text IS NULL OR event_id = $4)
               AND created_at >= coalesce($5, '-infinity') AND created_at < coalesce($6, 'infinity')
               AND (created_at, id) < (coalesce($7, 'infinity'), coalesce($8, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid))
             ORDER BY created_at DESC, id DESC
             LIMIT $9"
        ))
        .bind(tenant_id)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.action_id)
        .bind(filter.event_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(before.map(|(at, _)| at))
        .bind(before.map(|(_, id)| id))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
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
}

/// A cursor as the API hands it out: `<microseconds since the epoch>.<execution id>`.
pub fn encode_cursor((at, id): Cursor) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(text: &str) -> Option<Cursor> {
    let (micros, id) = text.split_once('.')?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros.parse().ok()?)?;
    let id: ExecutionId = id.parse().ok()?;
    Some((at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = (
            DateTime::<Utc>::from_timestamp_micros(1_764_000_000_123_456).expect("valid time"),
            ExecutionId::new(),
        );
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for text in [
            "",
            "123",
            "x.exe_0",
            "123.act_01jd0000000000000000000000",
            "12.3.4",
        ] {
            assert_eq!(decode_cursor(text), None, "{text:?}");
        }
    }
}
