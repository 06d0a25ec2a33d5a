//! Developer commands (placeholder until the stack tooling lands).
fn main() {
    let status = std::process::Command::new("cargo")
        .args(["test", "--workspace"])
        .status()
        .expect("cargo runs");
    std::process::exit(status.code().unwrap_or(1));
}
