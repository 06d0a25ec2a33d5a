//! `publish`: a new event for the same tenant on `herald.events`, so that actions can chain.

mod execute;
mod schema;
mod spec;
mod view;

pub use execute::execute;
pub use schema::schema;
pub use spec::{CHAIN_DEPTH_KEY, MAX_CHAIN_DEPTH, PublishSpec, parse};
pub use view::view;
