//! `log`: a line in the executor's log, for trying actions out.

mod execute;
mod schema;
mod spec;
mod view;

pub use execute::execute;
pub use schema::schema;
pub use spec::{LogLevel, LogSpec, parse};
pub use view::view;
