//! `herald-matcher`: the service (see the crate documentation), plus the `bench` and
//! `workload` tools of the matching benchmark.

use std::process::ExitCode;

use herald_common::config::ServiceName;

// Matching and loading allocate many small, short-lived objects; mimalloc handles them
// markedly faster than the system allocator (see `cargo xtask bench matcher`). `Cap` counts the
// bytes in use (one uncontended atomic add per call), which is how the benchmark measures the
// index's own memory rather than what the allocator keeps in reserve.
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

fn main() -> ExitCode {
    if herald_matcher::bench::wanted() {
        return herald_matcher::bench::main(|| ALLOCATOR.allocated());
    }
    herald_common::cli::main(ServiceName::Matcher, herald_matcher::start)
}
