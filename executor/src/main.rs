//! `herald-executor`: see the crate documentation.

use std::process::ExitCode;

use herald_common::config::ServiceName;

// Every attempt allocates its request, response and records; with the system allocator that
// was a fifth of the executor's CPU (malloc, free and consolidation in the profile of
// `cargo xtask bench executor`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    herald_common::cli::main(ServiceName::Executor, herald_executor::start)
}
