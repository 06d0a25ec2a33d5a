//! `cargo xtask test`: the whole suite against a throwaway broker and database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context;

use crate::postgres::Postgres;
use crate::rabbitmq::{self, Rabbit};
use crate::{packages, ports};

pub struct TestOptions {
    /// Skip `cargo fmt --check` and clippy (for quick local runs; CI never skips).
    pub skip_lint: bool,
    /// Extra arguments for the test runner (a filter, for example).
    pub runner_args: Vec<String>,
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<bool> {
    eprintln!("==> cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(args)
        .status()?;
    Ok(status.success())
}

fn has_nextest(root: &Path) -> bool {
    Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The suite runs under cargo-nextest: one process per test, which the trace tests' global
/// exporter and the per-test sandboxes rely on. It is on machines of this kind; where it is
/// not, it is installed from crates.io rather than falling back to `cargo test` quietly.
fn ensure_nextest(root: &Path) -> anyhow::Result<()> {
    if has_nextest(root) {
        return Ok(());
    }
    eprintln!("==> installing cargo-nextest from crates.io");
    if !cargo(root, &["install", "cargo-nextest", "--locked"])? || !has_nextest(root) {
        anyhow::bail!("cargo-nextest is needed to run the suite and could not be installed");
    }
    Ok(())
}

pub fn run(root: &Path, options: TestOptions) -> anyhow::Result<ExitCode> {
    if !options.skip_lint {
        if !cargo(root, &["fmt", "--all", "--", "--check"])? {
            eprintln!("cargo fmt found unformatted code: run `cargo fmt`");
            return Ok(ExitCode::FAILURE);
        }
        if !cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--quiet",
                "--",
                "-D",
                "warnings",
            ],
        )? {
            return Ok(ExitCode::FAILURE);
        }
    }
    // `--tests` resolves features as the test build does (dev-dependencies included), so the
    // binaries the suite starts and the test build share one set of artifacts instead of two.
    if !cargo(
        root,
        &["build", "--workspace", "--bins", "--tests", "--quiet"],
    )? {
        return Ok(ExitCode::FAILURE);
    }
    ensure_nextest(root)?;
    packages::ensure_installed()?;
    packages::ensure_python_tools()?;
    crate::tools_kubernetes::ensure_kubernetes_tools(root)?;
    crate::tools_observability::ensure_prometheus()?;
    crate::tools_console::ensure_console_tools(root)?;
    let base: PathBuf = root
        .join("target")
        .join("herald-test")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    eprintln!(
        "==> starting a test broker and database under {}",
        base.display()
    );
    let spec = rabbitmq::spec(
        &base,
        &format!("herald-test-{}", std::process::id()),
        ports::free_port()?,
        ports::free_port()?,
    )?;
    let rabbit = Rabbit::start(spec).context("starting the test broker")?;
    let postgres =
        Postgres::start(&base, ports::free_port()?, true).context("starting the test database")?;

    let ctl_env: Vec<String> = rabbit
        .spec
        .env()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let env = [
        ("HERALD_TEST_AMQP_URL", rabbit.spec.amqp_url()),
        ("HERALD_TEST_MANAGEMENT_URL", rabbit.spec.management_url()),
        ("HERALD_TEST_DATABASE_URL", postgres.url("herald")),
        (
            "HERALD_TEST_BIN_DIR",
            root.join("target/debug").display().to_string(),
        ),
        ("HERALD_TEST_RABBITMQ_NODE", rabbit.spec.node.clone()),
        ("HERALD_TEST_RABBITMQCTL_ENV", ctl_env.join(";")),
    ];
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(root)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    command.args(&options.runner_args);
    eprintln!("==> running the test suite");
    let status = command.status()?;
    drop(postgres);
    drop(rabbit);
    let _ = std::fs::remove_dir_all(&base);
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
