//! The binaries as an operator runs them: bad configuration, migrations, signals.

use std::time::Duration;

use herald_common::broker::topology::EXECUTOR_FIRST_QUEUE;
use herald_tests::process::ServiceProcess;
use herald_tests::{Receiver, Reply, Sandbox, SandboxOptions, eventually};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;

use crate::support::webhook_action;

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

/// Starts `binary` as a child on its own ops port and waits until it reports ready.
async fn spawn_ready(sandbox: &Sandbox, binary: &str) -> ServiceProcess {
    let ops_port = free_port();
    let mut env = sandbox.env();
    env.push(("HERALD_OPS__LISTEN".into(), format!("127.0.0.1:{ops_port}")));
    let service = ServiceProcess::spawn(binary, &env);
    let ready = format!("http://127.0.0.1:{ops_port}/readyz");
    eventually(
        &format!("{binary} to be ready"),
        Duration::from_secs(30),
        || async {
            let response = sandbox.http.get(&ready).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    service
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_exits_zero_on_sigterm() {
    let sandbox = Sandbox::with(SandboxOptions::none()).await;
    for binary in [
        "herald-ingest",
        "herald-matcher",
        "herald-executor",
        "herald-scheduler",
    ] {
        let mut service = spawn_ready(&sandbox, binary).await;
        let status = tokio::time::timeout(Duration::from_secs(20), service.terminate())
            .await
            .unwrap_or_else(|_| panic!("{binary} exits in time"));
        assert!(status.success(), "{binary}: {status}");
    }
    sandbox.stop().await;
}

/// SIGTERM while a webhook is on its way: the executor stops taking jobs, lets the attempt
/// finish within its grace period, records it, and exits 0; the broker has nothing to
/// redeliver, so the receiver sees the webhook once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_delivery_finishes_the_delivery_and_exits_zero() {
    let sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200).after(Duration::from_secs(2))]);
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("slow", "order.shipped", &receiver.url("/"), json!({})),
        )
        .await;
    let mut executor = spawn_ready(&sandbox, "herald-executor").await;
    let event_id = sandbox
        .event(&tenant, json!({"type": "order.shipped"}))
        .await;
    eventually("the delivery to start", Duration::from_secs(30), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;

    let status = tokio::time::timeout(Duration::from_secs(20), executor.terminate())
        .await
        .expect("exits in time");
    assert!(status.success(), "{status}");

    let executions = sandbox
        .terminal_executions(&tenant, &event_id, 1, Duration::from_secs(10))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["attempts"].as_array().unwrap().len(), 1);
    // No executor runs now, so a job the stopped one returned would sit in its queue.
    let queue = sandbox
        .broker()
        .await
        .queue_declare(
            EXECUTOR_FIRST_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the executors' queue");
    assert_eq!(queue.message_count(), 0, "nothing left to redeliver");
    assert_eq!(receiver.count(), 1);
    sandbox.stop().await;
}
