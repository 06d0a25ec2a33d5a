//! Installs the offline Kubernetes checkers the deployment tests run (`tests/it/deploy.rs`):
//! Helm's own library (PyPI `helm-python-sdk`), `kubernetes-validate` and `checkov` in a
//! virtual environment of their own at `tests/deploy/.venv` (checkov pins dozens of packages,
//! and would downgrade ones the machine's Python already has), and the `@kubernetes-models`
//! CRD schemas from `tests/deploy/package-lock.json` with `npm ci`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// The Python packages, pinned to the versions the checks were written against.
const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("helm-python-sdk", "0.2.2"),
    ("kubernetes-validate", "1.37.0"),
    ("checkov", "3.3.30"),
];

/// Where the deployment checks live, relative to the workspace root.
const DEPLOY_TESTS: &str = "tests/deploy";

pub fn ensure_kubernetes_tools(root: &Path) -> anyhow::Result<()> {
    let dir = root.join(DEPLOY_TESTS);
    ensure_python_packages(&dir)?;
    crate::packages::npm_ci_when_stale(&dir, "the @kubernetes-models CRD schemas")
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn ensure_python_packages(dir: &Path) -> anyhow::Result<()> {
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    // Present at the pinned versions: nothing to do.
    let probe = format!(
        "import importlib.metadata as m, sys; sys.exit(any(m.version(n) != v for n, v in {:?}))",
        PYTHON_PACKAGES
    );
    let present = python.exists()
        && Command::new(&python)
            .args(["-c", &probe])
            .output()
            .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let pins: Vec<String> = PYTHON_PACKAGES
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    eprintln!(
        "==> installing {} into {} from PyPI (about a minute)",
        pins.join(" "),
        venv.display()
    );
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (the deployment checks need Python 3 with venv)",
        )?;
    }
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(&pins),
        "pip install of the deployment checks' Python tools",
    )
}
