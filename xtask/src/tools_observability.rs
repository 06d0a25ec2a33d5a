//! Makes sure Prometheus and promtool are installed, from Debian's `prometheus` package when
//! absent: the observability tests check the alert rules with promtool and run every
//! dashboard query against a real Prometheus scraping the services.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::packages::is_root;

pub const PROMTOOL: &str = "/usr/bin/promtool";
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Installs the `prometheus` package when promtool or the server is missing.
pub fn ensure_prometheus() -> anyhow::Result<()> {
    if Path::new(PROMTOOL).exists() && Path::new(PROMETHEUS).exists() {
        return Ok(());
    }
    eprintln!("==> installing prometheus (server and promtool) from the OS packages");
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
    run(&[
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ])?;
    // Debian's package starts a server on :9090 (and the node exporter, when recommends came
    // along); the tests run their own Prometheus on a free port, so stop these.
    let stop = "service prometheus stop; service prometheus-node-exporter stop";
    let script: Vec<&str> = sudo.iter().copied().chain(["sh", "-c", stop]).collect();
    let _ = Command::new(script[0]).args(&script[1..]).output();
    if !Path::new(PROMTOOL).exists() {
        bail!("the prometheus package installed no {PROMTOOL}");
    }
    Ok(())
}
