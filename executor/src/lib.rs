//! The executor: performs executions (signed webhooks), records every attempt, and schedules
//! retries through the scheduler.

pub mod client;
pub mod deliver;
pub mod outcome;
pub mod request;
pub mod retry;
mod service;

pub use service::start;
