//! The HTTP API, one module per resource.

pub mod actions;
pub mod bulk_retries;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod executions;
pub mod stats;
pub mod tenants;
