//! The executor: performs executions (signed webhooks, chained events, log lines), records
//! every attempt, schedules retries through the scheduler, and keeps failing destinations
//! behind circuit breakers.

pub mod actions;
pub mod batcher;
pub mod circuits;
pub mod client;
pub mod deliver;
pub mod gates;
pub mod handlers;
pub mod job;
pub mod outcome;
pub mod request;
pub mod retry;
mod service;

pub use service::start;
