//! Herald's shared crate: the schemas, configuration, telemetry, broker plumbing and storage
//! that all four services use.

pub mod action;
pub mod broker;
pub mod circuit;
pub mod cli;
pub mod clock;
pub mod condition;
pub mod config;
pub mod crypto;
pub mod event;
pub mod ids;
pub mod json_bounds;
pub mod json_tree;
pub mod messages;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod service;
pub mod shutdown;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod workflow;
