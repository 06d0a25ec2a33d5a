//! What every request handler shares.

use std::sync::Arc;

use herald_common::config::IngestConfig;
use herald_common::event::EventLimits;
use herald_common::metrics::Metrics;
use herald_common::store::Store;

use crate::batcher::EventBatcher;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub batcher: EventBatcher,
    pub admin_token: Arc<str>,
    pub config: Arc<IngestConfig>,
    pub limits: EventLimits,
}
