//! Ingest: Herald's HTTP front door (events in, the management API).

pub mod api;
mod auth;
mod batcher;
mod body;
mod cloudevents;
mod console;
pub mod error;
pub mod error_codes;
mod live_streams;
mod merge_patch;
pub mod openapi;
pub mod provider;
mod query;
mod rate_limit;
mod routes;
mod service;
mod state;
mod store;
mod sync_results;

pub use service::{router, start};
pub use state::AppState;
