//! The HTTP API, one module per resource.

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
pub mod stats;
pub mod tenants;
