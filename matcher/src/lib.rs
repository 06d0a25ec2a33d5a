//! The matcher: turns events into executions, one per matched action, and hands their jobs to
//! the executor.

pub mod bench;
mod dispatch;
pub mod engine;
pub mod feed;
mod service;

pub use service::start;
