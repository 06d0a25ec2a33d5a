//! The handler contract: what an action does when it runs, one folder per type.
//!
//! Like a sink in vector, each type is a folder with the same files: `spec.rs` (its settings,
//! parsed and checked once, errors naming the field), `view.rs` (what reads show, credentials
//! masked), `schema.rs` (its JSON Schema, from which the OpenAPI document and the console's
//! action form are made) and `execute.rs` (one attempt, and what its result means). Around
//! them: [`handler`] (the list of types), [`client`] (the only way out of the process: the
//! guarded HTTP client with its vetted resolver), [`transport`] (one HTTP request and its answer),
//! [`signing`] (Standard Webhooks), [`outcome`] (what an answer means) and [`attempt`] (what an
//! attempt did, as the executor records it).
//!
//! Adding a type touches this crate (and a migration, if it stores something new):
//! 1. a folder `src/<type>/` with `mod.rs`, `spec.rs`, `view.rs`, `schema.rs`, `execute.rs`;
//! 2. a variant of [`Handler`] and its arm in each of `handler.rs`'s matches.
//!
//! A `workflow` is a type like the others, whose steps hold handlers of the other types; the
//! executor drives its runs (`executor::workflow`) with the decisions of
//! `herald_common::workflow`.
//!
//! The API, the console's form, the OpenAPI document, the executor and the store then take it
//! as they are.

pub mod attempt;
pub mod body;
pub mod client;
pub mod context;
pub mod credentials;
pub mod destination;
pub mod email;
pub mod handler;
pub mod headers;
pub mod http;
pub mod log;
pub mod mail;
pub mod oauth;
pub mod outcome;
pub mod publish;
pub mod signing;
pub mod template;
pub mod transport;
pub mod webhook;
pub mod workflow;

use herald_common::action::ActionError;
use herald_common::json_tree::Json;

pub use attempt::{Delivered, Performed};
pub use client::Outbound;
pub use context::Context;
pub use handler::Handler;

/// An action with Herald's handlers.
pub type ActionSpec = herald_common::action::ActionSpec<Handler>;
/// A stored action with its handler.
pub type Action = herald_common::store::ActionRecord<Handler>;

/// Parses and validates an action as the contract gives it.
pub fn parse_action(value: &serde_json::Value) -> Result<ActionSpec, ActionError> {
    ActionSpec::from_json(&Json::from_value(value), Handler::parse)
}

#[cfg(test)]
mod tests;
