//! Makes sure Prometheus and promtool are installed, from Debian's `prometheus` package when
//! absent: the observability tests check the alert rules with promtool and run every
//! dashboard query against a real Prometheus scraping the services.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use crate::packages::{apt_install, is_root};

pub const PROMTOOL: &str = "/usr/bin/promtool";
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Installs the `prometheus` package when promtool or the server is missing.
pub fn ensure_prometheus() -> anyhow::Result<()> {
    if Path::new(PROMTOOL).exists() && Path::new(PROMETHEUS).exists() {
        return Ok(());
    }
    eprintln!("==> installing prometheus (server and promtool) from the OS packages");
    apt_install(&["prometheus"])?;
    // Debian's package starts a server on :9090 (and the node exporter, when recommends came
    // along); the tests run their own Prometheus on a free port, so stop these.
    let stop = "service prometheus stop; service prometheus-node-exporter stop";
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let script: Vec<&str> = sudo.iter().copied().chain(["sh", "-c", stop]).collect();
    let _ = Command::new(script[0]).args(&script[1..]).output();
    // The rule checks need promtool and the live dashboard test the server: check both, so
    // a package that ships only one fails here rather than in a test.
    for binary in [PROMTOOL, PROMETHEUS] {
        if !Path::new(binary).exists() {
            bail!("the prometheus package installed no {binary}");
        }
    }
    Ok(())
}
