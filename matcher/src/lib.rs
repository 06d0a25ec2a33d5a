//! The matcher: turns events into executions, one per matched action, and hands their jobs to
//! the executor.

pub mod bench;
mod dispatch;
mod service;
mod store;
pub mod tenants;

pub use service::start;
