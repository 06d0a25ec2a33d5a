//! `herald-ingest`: see the crate documentation.

use std::process::ExitCode;

use herald_common::config::ServiceName;

fn main() -> ExitCode {
    herald_common::cli::main(ServiceName::Ingest, herald_ingest::start)
}
