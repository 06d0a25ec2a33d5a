//! Herald's integration tests: one binary, every test in its own sandbox on the real broker and
//! database that `cargo xtask test` starts.

mod action_api;
mod action_lifecycle;
mod api_access;
mod api_contract;
mod api_input;
mod bad_neighbours;
mod broker_intake;
mod circuits;
mod cli;
mod console;
mod crash;
mod dead_letters;
mod deliveries;
mod delivery;
mod deploy;
mod event_input;
mod events_in;
mod failed_executions;
mod faults;
mod handlers;
mod limits;
mod live_actions;
mod observability;
mod operator_api;
mod outcomes;
mod providers;
mod reconnect;
mod recovery;
mod retention;
mod retries;
mod scheduler;
mod stats;
mod support;
mod sync_mode;
mod traces;
