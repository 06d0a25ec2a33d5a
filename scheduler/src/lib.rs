//! The scheduler: holds delayed work (retries, held-back attempts, operator retries, recovered
//! executions) durably in PostgreSQL and releases it on time; re-sends events whose publication
//! was lost and executions that got stuck; carries out retries by filter; applies retention.

mod bulk;
mod gauges;
mod intake;
mod outbox;
mod periodic;
mod recovery;
mod release;
mod retention;
mod service;
mod store;

pub use service::{start, start_with_clock};
