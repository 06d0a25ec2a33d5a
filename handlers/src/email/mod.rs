//! `email`: a message over SMTP, from, to, cc, bcc, reply-to, subject and text and HTML bodies
//! all templates; through the action's own server or the operator's default relay, its host
//! put to the SSRF guard and behind its own circuit.

mod execute;
mod schema;
mod spec;
mod view;

pub use execute::{Rendered, execute, render};
pub use schema::schema;
pub use spec::{DEFAULT_RELAY, EmailSpec, MAX_RECIPIENTS, Security, SmtpSpec, parse};
pub use view::{keep_stored, view};
