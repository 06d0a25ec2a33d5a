//! Sequential priorities: "validate (10), then process (50), then notify (100)" for one event.
//! An action with `after_lower_priorities` starts only once every execution of the event with
//! a lower priority number has ended; with `requires_success` it is cancelled, the reason
//! recorded, when one of them did not succeed. Other actions of the event are not held.

use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox};
use serde_json::{Value, json};

fn ordered(name: &str, priority: i64, url: &str, flags: Value) -> Value {
    let mut action = json!({"name": name, "event_types": ["order.placed"], "priority": priority,
        "handler": {"type": "http", "url": url},
        "retry": {"max_attempts": 1, "delays_s": [1]}});
    if let (Some(action), Some(flags)) = (action.as_object_mut(), flags.as_object()) {
        action.extend(flags.clone());
    }
    action
}

/// The executions of one event by action name, once all have ended.
async fn run(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    names: &[(&str, String)],
) -> std::collections::BTreeMap<String, Value> {
    let event = sandbox
        .event(tenant, json!({"type": "order.placed", "data": {}}))
        .await;
    let executions = sandbox
        .terminal_executions(tenant, &event, names.len(), Duration::from_secs(30))
        .await;
    executions
        .into_iter()
        .map(|x| {
            let action = x["action_id"].as_str().unwrap_or_default().to_owned();
            let name = names
                .iter()
                .find(|(_, id)| *id == action)
                .map(|(name, _)| (*name).to_owned())
                .unwrap_or(action);
            (name, x)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn later_priorities_wait_for_earlier_ones_and_a_failure_cancels_what_requires_success() {
    let sandbox = Sandbox::start().await;
    let validate = Receiver::start().await;
    // Slow, so that the later ones would overtake it if they were not held.
    validate.script([Reply::status(200).after(Duration::from_millis(700))]);
    validate.fallback(Reply::status(500));
    let process = Receiver::start().await;
    let notify = Receiver::start().await;
    let audit = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let flags = json!({"after_lower_priorities": true, "requires_success": true});
    let mut names = Vec::new();
    for (name, priority, url, flags) in [
        ("validate", 10, validate.url("/"), json!({})),
        ("process", 50, process.url("/"), flags),
        (
            "notify",
            100,
            notify.url("/"),
            json!({"after_lower_priorities": true}),
        ),
        ("audit", 200, audit.url("/"), json!({})),
    ] {
        let created = sandbox
            .action(&tenant, ordered(name, priority, &url, flags))
            .await;
        names.push((name, created["id"].as_str().unwrap().to_owned()));
    }
    let (status, refused) = sandbox
        .try_action(
            &tenant,
            ordered("bad", 1, &audit.url("/"), json!({"requires_success": true})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("requires_success"),
        "{refused}"
    );

    // All succeed: each starts after the one before it has ended.
    let ended = run(&sandbox, &tenant, &names).await;
    for name in ["validate", "process", "notify", "audit"] {
        assert_eq!(
            ended[name]["status"], "succeeded",
            "{name}: {:?}",
            ended[name]
        );
    }
    let at = |receiver: &Receiver| receiver.received()[0].at;
    assert!(at(&process) >= at(&validate) + Duration::from_millis(600));
    assert!(at(&notify) > at(&process));
    assert!(
        at(&audit) < at(&process),
        "an action without the flag is not held"
    );

    // validate fails: process (requires_success) is cancelled with the reason; notify, which
    // only waits, runs once both have ended.
    let ended = run(&sandbox, &tenant, &names).await;
    assert_eq!(ended["validate"]["status"], "failed");
    assert_eq!(ended["process"]["status"], "cancelled");
    let reason = ended["process"]["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("lower priority") && reason.contains("failed"),
        "{reason}"
    );
    assert_eq!(ended["notify"]["status"], "succeeded");
    assert_eq!(process.count(), 1, "the cancelled one sent nothing");
    assert_eq!(notify.count(), 2);
    sandbox.stop().await;
}
