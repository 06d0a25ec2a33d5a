//! Keyset paging, newest first, shared by the event and execution listings: a page ends at a
//! `(time, id)` pair, the next page starts strictly before it, and the API hands the pair out
//! as `<microseconds since the epoch>.<id>` (the first dot ends the time; ids may hold dots).

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};

/// The cursor text for a page that ended at `(at, id)`.
pub fn encode_cursor(at: DateTime<Utc>, id: &impl Display) -> String {
    format!("{}.{id}", at.timestamp_micros())
}

/// Reads a cursor made by [`encode_cursor`]; `None` unless the time and the id both read.
pub fn decode_cursor<Id: FromStr>(text: &str) -> Option<(DateTime<Utc>, Id)> {
    let (micros, id) = text.split_once('.')?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros.parse().ok()?)?;
    if id.is_empty() {
        return None;
    }
    Some((at, id.parse().ok()?))
}

/// `AND <column> <= at AND (<column>, id) < (at, id)`. The first condition alone is what an
/// index on the time can seek by; the second breaks ties by id.
pub(super) fn push_older_than<'q, Id>(
    query: &mut sqlx::QueryBuilder<'q, sqlx::Postgres>,
    column: &str,
    at: DateTime<Utc>,
    id: Id,
) where
    Id: 'q + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    query
        .push(format!(" AND {column} <= "))
        .push_bind(at)
        .push(format!(" AND ({column}, id) < ("))
        .push_bind(at)
        .push(", ")
        .push_bind(id)
        .push(")");
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_common::ids::ExecutionId;

    fn at() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_micros(1_764_000_000_123_456).expect("valid time")
    }

    #[test]
    fn an_event_cursor_reads_back_as_written_even_with_dots_in_the_id() {
        for id in ["evt_1", "order.2026.1"] {
            let text = encode_cursor(at(), &id);
            assert_eq!(decode_cursor::<String>(&text), Some((at(), id.to_owned())));
        }
        for bad in ["", "123", "x.evt", "123."] {
            assert_eq!(decode_cursor::<String>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_execution_cursor_reads_back_as_written() {
        let id = ExecutionId::new();
        assert_eq!(
            decode_cursor::<ExecutionId>(&encode_cursor(at(), &id)),
            Some((at(), id))
        );
    }

    #[test]
    fn malformed_execution_cursors_are_refused() {
        for text in [
            "",
            "123",
            "x.exe_0",
            "123.act_01jd0000000000000000000000",
            "12.3.4",
        ] {
            assert_eq!(decode_cursor::<ExecutionId>(text), None, "{text:?}");
        }
    }
}
