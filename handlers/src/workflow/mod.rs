//! `workflow`: steps that are handlers of any other type (or `set` values, or a wait), run in
//! the order their dependencies give, each reading the outputs of the steps before it. The
//! executor drives a run (see `executor::workflow`); this folder holds what is the handler's
//! own: its settings, its view, its schema, and what one step computes.

mod dry_run;
mod execute;
mod schema;
mod spec;
mod view;

pub use dry_run::dry_run;
pub use execute::{MAX_OUTPUT_BYTES, condition_holds, output_of, set_values, wait_until};
pub use schema::schema;
pub use spec::{MAX_STEPS, StepRun, StepSpec, WorkflowSpec, parse};
pub use view::{keep_stored, view};
