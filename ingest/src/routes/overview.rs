//! `GET /v1/overview` (the tenant at a glance: the last hour and what needs attention now) and
//! `GET /v1/live` (the same, pushed as server-sent events whenever it changes), for the
//! operator console and anyone's own dashboard.

use std::convert::Infallible;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::overview::Overview;
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use herald_common::clock::SharedClock;
use herald_common::ids::TenantId;
use herald_common::store::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::error_codes::ErrorCode;
use crate::live_streams::{MAX_PER_TENANT, StreamSlot};
use crate::state::AppState;

/// The quickest a live stream looks again.
const MIN_INTERVAL: Duration = Duration::from_secs(2);
/// A look never takes more than a tenth of the stream's time: on a tenant whose last hour is
/// large, the overview's queries take longer, and the stream looks less often rather than
/// keeping the database busy.
const COST_FACTOR: u32 = 10;

pub async fn get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> ApiResult<Json<Overview>> {
    Ok(Json(
        crate::store::overview::overview(&state.store, tenant, state.clock.now()).await?,
    ))
}

pub async fn live(State(state): State<AppState>, Tenant(tenant): Tenant) -> ApiResult<Response> {
    let slot = state.live_streams.open(tenant).ok_or_else(|| {
        ApiError::new(
            ErrorCode::TooManyStreams,
            format!(
                "at most {MAX_PER_TENANT} live streams per tenant on one ingest replica; \
                 close one"
            ),
        )
    })?;
    let stream = overview_changes(
        state.store.clone(),
        state.clock.clone(),
        tenant,
        state.shutdown.clone(),
        slot,
    );
    // Proxies that buffer (nginx) would hold the events back.
    Ok((
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

/// What must differ for the overview to count as changed: its counts and change times, not
/// the window's bounds (which move every second).
fn marker(overview: &Overview) -> String {
    json!([
        overview.last_hour.executions,
        overview.events_last_hour,
        overview.open_circuits,
        overview.overdue_retries,
        overview.latest_event_at,
        overview.circuits_changed_at,
        overview.actions_changed_at,
        overview.minutes.last().map(|m| m.at),
    ])
    .to_string()
}

struct Watch {
    store: Store,
    clock: SharedClock,
    tenant: TenantId,
    shutdown: CancellationToken,
    last: Option<String>,
    interval: Duration,
    first: bool,
    /// Held while the stream is open.
    _slot: StreamSlot,
}

/// The overview at once, then again whenever it changed; ends when ingest shuts down (so that
/// an open console never holds up a graceful shutdown).
fn overview_changes(
    store: Store,
    clock: SharedClock,
    tenant: TenantId,
    shutdown: CancellationToken,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let watch = Watch {
        store,
        clock,
        tenant,
        shutdown,
        last: None,
        interval: MIN_INTERVAL,
        first: true,
        _slot: slot,
    };
    futures_util::stream::unfold(watch, |mut watch| async move {
        loop {
            if !watch.first {
                tokio::select! {
                    () = tokio::time::sleep(watch.interval) => {}
                    () = watch.shutdown.cancelled() => return None,
                }
            }
            watch.first = false;
            let started = Instant::now();
            let looked =
                crate::store::overview::overview(&watch.store, watch.tenant, watch.clock.now())
                    .await;
            watch.interval = MIN_INTERVAL.max(started.elapsed() * COST_FACTOR);
            match looked {
                Ok(overview) => {
                    let marker = marker(&overview);
                    if watch.last.as_ref() == Some(&marker) {
                        continue;
                    }
                    watch.last = Some(marker);
                    let event = Event::default()
                        .event("overview")
                        .json_data(&overview)
                        .unwrap_or_default();
                    return Some((Ok(event), watch));
                }
                Err(error) => {
                    tracing::warn!(%error, "live overview: the database did not answer");
                    let event = Event::default()
                        .event("unavailable")
                        .data("the database did not answer; retrying");
                    return Some((Ok(event), watch));
                }
            }
        }
    })
}
