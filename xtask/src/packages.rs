//! Makes sure RabbitMQ and PostgreSQL are installed, from Debian's packages when absent.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

pub const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
pub const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// The directory holding PostgreSQL's server programs (`initdb`, `postgres`, `pg_ctl`).
pub fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| root.join(v.to_string()).join("bin/postgres").exists())
        .collect();
    versions.sort_unstable();
    versions
        .last()
        .map(|v| root.join(v.to_string()).join("bin"))
}

/// Whether we run as root (then the servers run as their own users, and apt needs no sudo).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Installs Debian packages with apt (through sudo when not root), without recommends.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let mut command = Command::new(sudo.first().copied().unwrap_or(args[0]));
        let rest = if sudo.is_empty() { &args[1..] } else { args };
        command.args(rest).env("DEBIAN_FRONTEND", "noninteractive");
        let status = command
            .status()
            .with_context(|| format!("running {}", args.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", args.join(" "));
        }
        Ok(())
    };
    run(&["apt-get", "update", "-qq"])?;
    let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
    install.extend(packages);
    run(&install)
}

/// Installs whatever of the broker and the database is missing.
pub fn ensure_installed() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !Path::new(RABBITMQ_SERVER).exists() {
        missing.push("rabbitmq-server");
    }
    if postgres_bin_dir().is_none() {
        missing.push("postgresql");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "==> installing {} from the OS packages",
        missing.join(" and ")
    );
    apt_install(&missing)?;
    // Debian's packages try to start the servers; this stack runs its own, so stop theirs.
    let _ = Command::new("sh")
        .args([
            "-c",
            "service rabbitmq-server stop; service postgresql stop",
        ])
        .output();
    Ok(())
}

/// The Standard Webhooks reference library, which the tests use to verify signatures, and the
/// CloudEvents SDK, which they use to send CloudEvents, an OpenAPI validator for the
/// published document, and jsonschema (with rfc3339-validator, without which it skips
/// `date-time`) for real answers against its schemas, and aiosmtpd, the SMTP server email tests
/// send to: implementations that share no code with Herald's.
pub fn ensure_python_tools() -> anyhow::Result<()> {
    let present = Command::new("python3")
        .args([
            "-c",
            "import standardwebhooks, cloudevents.conversion, openapi_spec_validator, \
             jsonschema, rfc3339_validator, aiosmtpd",
        ])
        .output()
        .context("python3 is needed by the test suite")?
        .status
        .success();
    if present {
        return Ok(());
    }
    eprintln!(
        "==> installing the standardwebhooks, cloudevents, openapi-spec-validator, jsonschema and aiosmtpd Python packages from PyPI"
    );
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "standardwebhooks",
            // 1.x: the `cloudevents.http` and `conversion` API the tests are written against.
            "cloudevents==1.11.0",
            "openapi-spec-validator==0.9.0",
            // Used directly, not only through openapi-spec-validator (which needs >=4.26).
            "jsonschema==4.26.0",
            "rfc3339-validator==0.1.4",
            // A real SMTP server for the email tests (the remote mail server's stand-in).
            "aiosmtpd==1.4.6",
        ])
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("`pip install` of the test suite's Python tools failed ({status})");
    }
    Ok(())
}

/// `npm ci` in `dir` unless its `node_modules` is at least as new as its lock file; `what`
/// names the packages for the progress line.
pub fn npm_ci_when_stale(dir: &Path, what: &str) -> anyhow::Result<()> {
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (installed.metadata(), lock.metadata()) {
        (Ok(installed), Ok(lock)) => installed.modified()? >= lock.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    eprintln!("==> installing {what} with npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .context("running npm (the test suite needs Node.js 20 and npm)")?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    Ok(())
}
