//! Ingest: Herald's HTTP front door (events in, the management API).

mod auth;
mod batcher;
mod body;
mod cloudevents;
pub mod error;
mod query;
mod routes;
mod service;
mod state;

pub use service::{router, start};
pub use state::AppState;
