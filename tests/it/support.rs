//! Helpers shared by the tests of this binary.

use std::io::Write;
use std::process::{Command, Stdio};

use herald_tests::receiver::Received;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox};

/// The repository's root.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// A signing secret the tests know.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A webhook action for `url` with a short retry policy.
pub fn webhook_action(
    name: &str,
    event_type: &str,
    url: &str,
    retry: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "event_types": [event_type],
        "handler": {"type": "webhook", "url": url, "secret": SECRET, "timeout_ms": 5000},
        "retry": retry,
    })
}

/// Verifies a received webhook with the Python Standard Webhooks library.
pub fn verify_with_reference_library(received: &Received, secret: &str) -> Result<(), String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/verify_standard_webhook.py"
    );
    let headers: serde_json::Map<String, serde_json::Value> =
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    serde_json::Value::from(received.header(name)),
                )
            })
            .collect();
    let input = serde_json::json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8_lossy(&received.body),
    });
    let output = run_python(script, &input);
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Runs a Python script of `tests/python/` with `input` as JSON on stdin (`cargo xtask test`
/// installs the packages they use).
pub fn run_python(script: &str, input: &serde_json::Value) -> std::process::Output {
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    child.wait_with_output().expect("python finishes")
}

/// A running sandbox, a receiver, and a tenant with one webhook action sending `event_type`
/// to the receiver's `/hook`.
pub struct WebhookSetup {
    pub sandbox: Sandbox,
    pub receiver: Receiver,
    pub tenant: TestTenant,
}

pub async fn webhook_setup(event_type: &str, retry: serde_json::Value) -> WebhookSetup {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", event_type, &receiver.url("/hook"), retry),
        )
        .await;
    WebhookSetup {
        sandbox,
        receiver,
        tenant,
    }
}
