//! The scheduler: holds delayed work (retries, scheduled deliveries) durably in PostgreSQL and
//! releases it on time; also re-sends events whose publication was lost.

pub mod clock;
mod intake;
mod outbox;
mod release;
mod service;

pub use service::{start, start_with_clock};
