//! The binaries as an operator runs them: bad configuration, migrations, signals.

use std::time::Duration;

use herald_tests::process::ServiceProcess;
use herald_tests::{Sandbox, SandboxOptions, eventually};

/// A port nobody listens on now (the service binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(binary: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(herald_tests::env::bin_dir().join(binary))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the binary")
}

#[test]
fn a_bad_setting_exits_non_zero_with_one_line_naming_the_key() {
    let cases = [
        ("HERALD_AMQP__URL", "nonsense", "amqp.url"),
        ("HERALD_AMQP__PREFETCH", "lots", "amqp.prefetch"),
        ("HERALD_DATABASE__URL", "mysql://db", "database.url"),
    ];
    for binary in [
        "herald-ingest",
        "herald-matcher",
        "herald-executor",
        "herald-scheduler",
    ] {
        for (key, value, named) in cases {
            let output = run(binary, &[], &[(key, value)]);
            assert_eq!(output.status.code(), Some(2), "{binary} {key}={value}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains(named), "{stderr} names {named}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_applies_the_schema_and_config_hides_secrets() {
    let sandbox = Sandbox::with(SandboxOptions::none()).await;
    let output = run(
        "herald-ingest",
        &["migrate"],
        &[("HERALD_DATABASE__URL", &sandbox.database_url)],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let url = "amqp://herald:hunter2@broker:5672/%2f";
    let output = run("herald-matcher", &["config"], &[("HERALD_AMQP__URL", url)]);
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains("broker:5672") && !printed.contains("hunter2"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_exits_zero() {
    let sandbox = Sandbox::with(SandboxOptions::none()).await;
    let ops_port = free_port();
    let mut env = sandbox.env();
    env.push(("HERALD_OPS__LISTEN".into(), format!("127.0.0.1:{ops_port}")));
    let mut matcher = ServiceProcess::spawn("herald-matcher", &env);
    let ready = format!("http://127.0.0.1:{ops_port}/readyz");
    eventually(
        "the matcher to be ready",
        Duration::from_secs(30),
        || async {
            let response = sandbox.http.get(&ready).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    let status = tokio::time::timeout(Duration::from_secs(20), matcher.terminate())
        .await
        .expect("exits in time");
    assert!(status.success(), "{status}");
}
