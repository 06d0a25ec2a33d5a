//! What every request handler shares.

use std::sync::Arc;

use herald_common::config::IngestConfig;
use herald_common::event::EventLimits;
use herald_common::metrics::Metrics;
use herald_common::store::Store;

use herald_matcher::engine::Engine;

use crate::batcher::EventBatcher;

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
}
