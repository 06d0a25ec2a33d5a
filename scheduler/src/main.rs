//! `herald-scheduler`: see the crate documentation.

use std::process::ExitCode;

use herald_common::config::ServiceName;

fn main() -> ExitCode {
    herald_common::cli::main(ServiceName::Scheduler, herald_scheduler::start)
}
