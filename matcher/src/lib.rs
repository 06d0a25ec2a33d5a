//! The matcher: turns events into executions, one per matched action, and hands their jobs to
//! the executor.

mod dispatch;
mod service;

pub use service::start;
