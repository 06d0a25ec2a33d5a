//! What every request handler shares.

use std::sync::Arc;

use herald_common::clock::SharedClock;
use herald_common::config::IngestConfig;
use herald_common::event::EventLimits;
use herald_common::metrics::Metrics;
use herald_common::store::Store;

use herald_engine::Engine;

use herald_handlers::Outbound;

use crate::batcher::EventBatcher;
use crate::rate_limit::TenantLimiter;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub batcher: EventBatcher,
    pub admin_token: Arc<str>,
    pub config: Arc<IngestConfig>,
    pub limits: EventLimits,
    /// Every tenant's live actions, kept current by the action feed: for budgets, sync
    /// actions and dry runs.
    pub engine: Arc<Engine>,
    pub limiter: Arc<TenantLimiter>,
    /// Ends long-lived responses (the live overview) when ingest shuts down.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Open live streams per tenant, bounded.
    pub live_streams: crate::live_streams::LiveStreams,
    /// For test deliveries (`POST /v1/actions/{id}/test` with `send`): the handlers' guarded
    /// client, with the executor's destination policy and response limit.
    pub outbound: Outbound,
    /// The time, as every route reads it.
    pub clock: SharedClock,
}
