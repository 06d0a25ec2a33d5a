//! `GET /v1/executions/export`: the executions a filter selects, as CSV, newest first, for a
//! spreadsheet or a ticket. Read a page at a time with the listing's own query, up to
//! [`MAX_ROWS`]; a longer result is cut there and says so in `Herald-Truncated: true`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_common::store::ExecutionRecord;

use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::query::QueryParams;
use crate::routes::executions::FilterParams;
use crate::state::AppState;

pub const MAX_ROWS: usize = 100_000;
const PAGE: i64 = 1000;

const COLUMNS: [&str; 11] = [
    "id",
    "event_id",
    "action_id",
    "status",
    "attempts",
    "max_attempts",
    "created_at",
    "updated_at",
    "finished_at",
    "next_attempt_at",
    "last_error",
];

pub async fn export(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(params): QueryParams<FilterParams>,
) -> ApiResult<Response> {
    let filter = params.parse()?;
    let mut csv = COLUMNS.join(",");
    csv.push_str("\r\n");
    let mut rows = 0;
    let mut before = None;
    let truncated = loop {
        let page = crate::store::execution_list::list_executions(
            &state.store,
            tenant,
            &filter,
            before,
            PAGE,
        )
        .await?;
        for execution in &page.executions {
            if rows == MAX_ROWS {
                break;
            }
            push_row(&mut csv, execution);
            rows += 1;
        }
        match page.next {
            Some(_) if rows == MAX_ROWS => break true,
            Some(next) => before = Some(next),
            None => break false,
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"executions.csv\"",
            ),
            (
                header::HeaderName::from_static("herald-truncated"),
                if truncated { "true" } else { "false" },
            ),
        ],
        csv,
    )
        .into_response())
}

fn push_row(csv: &mut String, e: &ExecutionRecord) {
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let fields = [
        e.id.to_string(),
        e.event_id.clone(),
        e.action_id.to_string(),
        e.status.as_str().to_owned(),
        e.attempts.to_string(),
        e.max_attempts.to_string(),
        e.created_at.to_rfc3339(),
        e.updated_at.to_rfc3339(),
        time(e.finished_at),
        time(e.next_attempt_at),
        e.last_error.clone().unwrap_or_default(),
    ];
    let cells: Vec<String> = fields.iter().map(|f| cell(f)).collect();
    csv.push_str(&cells.join(","));
    csv.push_str("\r\n");
}

/// One CSV cell (RFC 4180): quoted when it holds a separator, quote or line break. A cell
/// that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first:
/// event ids and error texts come from outside) is prefixed with `'`.
fn cell(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_are_quoted_and_defused() {
        for (text, want) in [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@sum", "'@sum"),
            ("HTTP 500: =oops", "HTTP 500: =oops"),
        ] {
            assert_eq!(cell(text), want, "{text:?}");
        }
    }
}
