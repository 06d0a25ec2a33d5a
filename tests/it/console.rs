//! The operator console end to end: `tests/console/e2e.mjs` drives it in Debian's headless
//! Chromium (with playwright-core) against this sandbox's stack, from a new action to a
//! retried delivery; see that script for the steps. `cargo xtask test` installs Chromium and
//! the script's npm packages. Set `HERALD_CONSOLE_SCREENSHOTS` to a folder to keep a
//! screenshot of each page (the README's come from here).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use herald_common::config::Config;
use herald_tests::Sandbox;
use herald_tests::sandbox::SandboxOptions;
use reqwest::Method;

const CHROMIUM: &str = "/usr/bin/chromium";

fn console_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
}

/// Circuits that open after three failures in a row and stay open until reset: the script
/// resets one by hand.
fn operator_circuits(config: &mut Config) {
    config.executor.circuit_consecutive_failures = 3;
    config.executor.circuit_cooldown_ms = 600_000;
    config.executor.circuit_sync_ms = 100;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_goes_from_a_new_action_to_a_retried_delivery_in_the_console() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the console test needs Debian's chromium package \
         (`cargo xtask test` installs it; see xtask/src/tools_console.rs)"
    );
    assert!(
        console_tests()
            .join("node_modules/playwright-core")
            .exists(),
        "tests/console/node_modules is missing: run `npm ci` there (`cargo xtask test` does)"
    );
    let sandbox = Sandbox::with(SandboxOptions {
        configure: operator_circuits,
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let (status, shown) = sandbox
        .call(
            Method::GET,
            &format!("/v1/tenants/{}", tenant.id),
            Some(sandbox.admin_token()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    let screenshots = std::env::var("HERALD_CONSOLE_SCREENSHOTS").unwrap_or_default();
    let base = sandbox.api_url("");
    let run = tokio::process::Command::new("node")
        .arg("e2e.mjs")
        .current_dir(console_tests())
        .env("HERALD_URL", base.trim_end_matches('/'))
        .env("HERALD_TENANT_KEY", &tenant.key)
        .env("HERALD_TENANT_ID", &tenant.id)
        .env("HERALD_TENANT_NAME", shown["name"].as_str().expect("name"))
        .env("HERALD_ADMIN_TOKEN", sandbox.admin_token())
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", screenshots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the console test finished within 4 minutes")
        .expect("node runs (the console test needs Node.js 20)");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the console test failed:\n{said}");
    assert!(said.contains("console end to end: passed"), "{said}");
    sandbox.stop().await;
}
