//! `herald-executor`: see the crate documentation.

use std::process::ExitCode;

use herald_common::config::ServiceName;

fn main() -> ExitCode {
    herald_common::cli::main(ServiceName::Executor, herald_executor::start)
}
