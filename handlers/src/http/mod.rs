//! `http`: a templated API request, for receivers that are not Standard Webhooks receivers
//! (Slack, Twilio, SendGrid, a CRM, the tenant's own services). Any method; path, query,
//! headers and body rendered from templates over the event; scheme, host and port fixed when
//! the action is saved; bearer, basic or OAuth client-credentials auth; optional signing.

mod auth;
mod execute;
mod schema;
mod spec;
mod view;

pub use auth::{AUTH_TYPES, Auth};
pub use execute::{Prepared, execute, prepare, scrubbed};
pub use schema::schema;
pub use spec::{HttpSpec, parse, parse_timeout};
pub use view::{keep_stored, view};

#[cfg(test)]
mod tests;
