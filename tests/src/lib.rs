//! The sandbox harness for Herald's integration tests.
//!
//! Every test gets its own RabbitMQ vhost, its own PostgreSQL database (copied from a migrated
//! template) and its own ports, so tests run in parallel without seeing each other. The broker
//! and database themselves are started by `cargo xtask test`; a test run without them fails
//! loudly instead of skipping.

pub mod env;
pub mod eventually;
pub mod mail_server;
pub mod process;
pub mod receiver;
pub mod sandbox;
pub mod servers;

pub use eventually::{eventually, eventually_showing};
pub use mail_server::MailServer;
pub use receiver::{Receiver, Reply};
pub use sandbox::{Sandbox, SandboxOptions};
