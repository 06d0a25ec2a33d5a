//! `webhook`: a signed HTTP request carrying the contract's envelope (Standard Webhooks
//! headers, one signature per active secret).

mod execute;
mod request;
mod schema;
mod spec;
mod view;

pub use execute::execute;
pub use request::{USER_AGENT, body, build, payload};
pub use schema::schema;
pub use spec::{MAX_TIMEOUT_MS, WebhookBody, WebhookSpec, parse};
pub use view::{keep_stored, view};
