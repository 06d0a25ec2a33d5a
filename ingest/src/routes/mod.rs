//! The HTTP API, one module per resource.

use axum::Json;
use axum::http::header::LOCATION;
use axum::http::{HeaderName, StatusCode};
use serde_json::Value;

pub mod action_edit;
pub mod action_list;
pub mod action_test;
pub mod actions;
pub mod bulk_retries;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod execution_export;
pub mod executions;
pub mod hooks;
pub mod overview;
pub mod providers;
pub mod secrets;
pub mod stats;
pub mod tenants;

/// A 201 answer: where the new resource lives, and what it is.
pub type Created = (StatusCode, [(HeaderName, String); 1], Json<Value>);

/// Answers 201 with `location` in `Location` and `body`.
pub(crate) fn created(location: String, body: Value) -> Created {
    (StatusCode::CREATED, [(LOCATION, location)], Json(body))
}
