//! `GET /v1/stats` and `GET /v1/actions/{id}/stats`: executions by status, success rate,
//! attempts per success and attempt duration percentiles over a window (`since`, `until`,
//! RFC 3339; the last 24 hours by default, at most 31 days).

use crate::store::stats::Stats;
use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::query::{QueryParams, invalid, time};
use crate::routes::actions::find;
use crate::state::AppState;

const DEFAULT_WINDOW_HOURS: i64 = 24;
const MAX_WINDOW_DAYS: i64 = 31;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    since: Option<String>,
    until: Option<String>,
}

impl Window {
    fn bounds(&self) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
        let until = time("until", self.until.as_deref())?.unwrap_or_else(Utc::now);
        let since = time("since", self.since.as_deref())?
            .unwrap_or(until - Duration::hours(DEFAULT_WINDOW_HOURS));
        if since >= until {
            return Err(invalid("until", "later than `since`"));
        }
        if until - since > Duration::days(MAX_WINDOW_DAYS) {
            return Err(invalid(
                "since",
                &format!("at most {MAX_WINDOW_DAYS} days before `until`"),
            ));
        }
        Ok((since, until))
    }
}

pub async fn overall(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    QueryParams(window): QueryParams<Window>,
) -> ApiResult<Json<Stats>> {
    let (since, until) = window.bounds()?;
    Ok(Json(
        crate::store::stats::stats(&state.store, tenant, None, since, until).await?,
    ))
}

pub async fn of_action(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    QueryParams(window): QueryParams<Window>,
) -> ApiResult<Json<Stats>> {
    let (since, until) = window.bounds()?;
    let id = find(&state, tenant, &id).await?.id;
    Ok(Json(
        crate::store::stats::stats(&state.store, tenant, Some(id), since, until).await?,
    ))
}
