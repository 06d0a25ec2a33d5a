//! An action's life: disabled, enabled, soft-deleted and restored over the API, each change
//! live at once in the matchers, and only for the action's own tenant.

use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

/// Sends events until one is matched to `expected` executions (a change reaches the matchers
/// within moments, not at once).
async fn matches_become(sandbox: &Sandbox, tenant: &TestTenant, expected: i64) {
    eventually(
        &format!("events to match {expected} action(s)"),
        Duration::from_secs(20),
        || async {
            let id = sandbox.event(tenant, json!({"type": "order.paid"})).await;
            let matched = eventually(
                "the event to be matched",
                Duration::from_secs(10),
                || async { sandbox.event_view(tenant, &id).await["matched_count"].as_i64() },
            )
            .await;
            (matched == expected).then_some(())
        },
    )
    .await;
}

async fn lifecycle(sandbox: &Sandbox, tenant: &TestTenant, method: Method, path: &str) -> Value {
    let (status, body) = sandbox.call(method, path, Some(&tenant.key), None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_is_disabled_enabled_deleted_and_restored_live() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let action = sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;
    let path = format!("/v1/actions/{}", action["id"].as_str().expect("id"));
    matches_become(&sandbox, &tenant, 1).await;

    let disabled = lifecycle(&sandbox, &tenant, Method::POST, &format!("{path}/disable")).await;
    assert_eq!(disabled["enabled"], false);
    matches_become(&sandbox, &tenant, 0).await;
    let enabled = lifecycle(&sandbox, &tenant, Method::POST, &format!("{path}/enable")).await;
    assert_eq!(enabled["enabled"], true);
    matches_become(&sandbox, &tenant, 1).await;

    let deleted = lifecycle(&sandbox, &tenant, Method::DELETE, &path).await;
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    matches_become(&sandbox, &tenant, 0).await;
    let kept = lifecycle(&sandbox, &tenant, Method::GET, &path).await;
    assert!(
        kept["deleted_at"].is_string(),
        "a deleted action stays readable: {kept}"
    );
    let restored = lifecycle(&sandbox, &tenant, Method::POST, &format!("{path}/restore")).await;
    assert_eq!(restored["deleted_at"], Value::Null);
    assert!(restored["revision"].as_i64() > action["revision"].as_i64());
    matches_become(&sandbox, &tenant, 1).await;

    // Another tenant's key, or an unknown id, finds nothing.
    let other = sandbox.tenant().await;
    for (method, route) in [
        (Method::DELETE, path.clone()),
        (Method::POST, format!("{path}/disable")),
        (Method::POST, format!("{path}/restore")),
        (Method::POST, "/v1/actions/act_nothing/enable".to_owned()),
    ] {
        let (status, body) = sandbox.call(method, &route, Some(&other.key), None).await;
        assert_eq!(status, 404, "{route}: {body}");
    }
    sandbox.stop().await;
}
