//! `herald-matcher`: the service (see the crate documentation), plus the `bench` and
//! `workload` tools of the matching benchmark.

use std::process::ExitCode;

use herald_common::config::ServiceName;

// Matching and loading allocate many small, short-lived objects; mimalloc handles them
// markedly faster than the system allocator (see `cargo xtask bench matcher`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    if herald_matcher::bench::wanted() {
        return herald_matcher::bench::main();
    }
    herald_common::cli::main(ServiceName::Matcher, herald_matcher::start)
}
