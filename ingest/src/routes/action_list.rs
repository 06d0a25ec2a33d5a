//! `GET /v1/actions`: the tenant's actions by filter, ordered by name, with cursor paging.

use crate::store::action_list::ActionFilter;
use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_common::event::EventType;
use herald_handlers::Handler;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::query::{QueryParams, invalid, page_limit};
use crate::routes::actions::view;
use crate::state::AppState;

const MAX_SEARCH_LEN: usize = 200;

/// The query string, as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    enabled: Option<String>,
    handler_type: Option<String>,
    event_type: Option<String>,
    q: Option<String>,
    include_deleted: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn flag(name: &str, text: Option<&str>) -> ApiResult<Option<bool>> {
    match text {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(invalid(name, "true or false")),
    }
}

impl ListParams {
    fn filter(&self) -> ApiResult<ActionFilter> {
        if let Some(kind) = &self.handler_type
            && !Handler::TYPES.contains(&kind.as_str())
        {
            return Err(invalid("handler_type", &Handler::TYPES.join(", ")));
        }
        if let Some(event_type) = &self.event_type {
            EventType::parse(event_type).map_err(|_| invalid("event_type", "an event type"))?;
        }
        let search = self.q.as_deref().filter(|q| !q.is_empty());
        if search.is_some_and(|q| q.len() > MAX_SEARCH_LEN) {
            return Err(invalid("q", &format!("at most {MAX_SEARCH_LEN} bytes")));
        }
        Ok(ActionFilter {
            enabled: flag("enabled", self.enabled.as_deref())?,
            handler_type: self.handler_type.clone(),
            event_type: self.event_type.clone(),
            search: search.map(str::to_owned),
            include_deleted: flag("include_deleted", self.include_deleted.as_deref())?
                .unwrap_or(false),
        })
    }

    fn limit(&self) -> ApiResult<i64> {
        page_limit(self.limit.as_deref())
    }

    /// The name the page starts after (the cursor is that name, base64url-encoded).
    fn after(&self) -> ApiResult<Option<String>> {
        self.cursor
            .as_deref()
            .map(|cursor| {
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| invalid("cursor", "a cursor from a previous page"))
            })
            .transpose()
    }
}

pub async fn list(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<Value>> {
    let filter = params.filter()?;
    let page = crate::store::action_list::list_actions(
        &state.store,
        tenant,
        &filter,
        params.after()?.as_deref(),
        params.limit()?,
    )
    .await?;
    let data: Vec<Value> = page.actions.iter().map(|a| view(a, false)).collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next.map(|name| URL_SAFE_NO_PAD.encode(name)),
    })))
}
