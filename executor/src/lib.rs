//! The executor: performs executions (through the handlers crate: signed webhooks, API
//! requests, email, chained events, log lines), records every attempt, schedules retries through the scheduler, and keeps failing destinations
//! behind circuit breakers.

pub mod actions;
pub mod batcher;
pub mod circuits;
pub mod decide;
pub mod gates;
pub mod job;
pub mod retry;
pub mod secrets;
mod service;
mod store;
mod workflow;

pub use service::start;
