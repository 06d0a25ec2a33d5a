//! Delivery statistics per action and overall: executions by status, success rate, attempts
//! per success and duration percentiles.

use std::time::Duration;

use herald_tests::{Receiver, Reply, Sandbox};
use reqwest::Method;
use serde_json::json;

use crate::support::webhook_action;

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_outcomes_per_action_and_overall() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    // Two deliveries succeed, the third is refused for good.
    receiver.script([Reply::status(200), Reply::status(200), Reply::status(400)]);
    let tenant = sandbox.tenant().await;
    let action = sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;
    for n in 0..3 {
        let id = sandbox
            .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        sandbox
            .terminal_executions(&tenant, &id, 1, Duration::from_secs(30))
            .await;
    }

    let action_path = format!("/v1/actions/{}/stats", action["id"].as_str().expect("id"));
    for path in [action_path.as_str(), "/v1/stats"] {
        let (status, stats) = sandbox
            .call(Method::GET, path, Some(&tenant.key), None)
            .await;
        assert_eq!(status, 200, "{path}: {stats}");
        assert_eq!(stats["executions"]["succeeded"], 2, "{stats}");
        assert_eq!(stats["executions"]["failed"], 1, "{stats}");
        assert_eq!(stats["executions"]["pending"], 0, "{stats}");
        assert_eq!(stats["executions"]["total"], 3, "{stats}");
        let rate = stats["success_rate"].as_f64().expect("a rate");
        assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{stats}");
        assert_eq!(stats["attempts_per_success"], 1.0, "{stats}");
        assert!(stats["duration_ms"]["p50"].as_f64().is_some(), "{stats}");
        assert!(stats["duration_ms"]["p95"].as_f64().is_some(), "{stats}");
    }

    // A window with nothing in it, a bad window, another tenant's action.
    let (status, empty) = sandbox
        .call(
            Method::GET,
            "/v1/stats?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z",
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["executions"]["total"], 0);
    assert_eq!(empty["success_rate"], serde_json::Value::Null);
    let (status, body) = sandbox
        .call(
            Method::GET,
            "/v1/stats?since=2020-01-01T00:00:00Z",
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_parameter")),
        "{body}"
    );
    let other = sandbox.tenant().await;
    let (status, body) = sandbox
        .call(Method::GET, &action_path, Some(&other.key), None)
        .await;
    assert_eq!(status, 404, "{body}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_of_each_action_differ_from_each_other_and_add_up_overall() {
    let sandbox = Sandbox::start().await;
    let (flaky, steady) = (Receiver::start().await, Receiver::start().await);
    // The first event takes flaky two attempts (500, then 200); the second is refused for good.
    flaky.script([Reply::status(500), Reply::status(200), Reply::status(400)]);
    let tenant = sandbox.tenant().await;
    let retry = json!({"max_attempts": 3, "delays_s": [1]});
    let flaky_action = sandbox
        .action(
            &tenant,
            webhook_action("flaky", "order.paid", &flaky.url("/"), retry.clone()),
        )
        .await;
    let steady_action = sandbox
        .action(
            &tenant,
            webhook_action("steady", "order.paid", &steady.url("/"), retry),
        )
        .await;
    for n in 0..2 {
        let id = sandbox
            .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        sandbox
            .terminal_executions(&tenant, &id, 2, Duration::from_secs(30))
            .await;
    }
    assert_eq!((flaky.count(), steady.count()), (3, 2));

    let stats_path = |action: &serde_json::Value| {
        format!("/v1/actions/{}/stats", action["id"].as_str().expect("id"))
    };
    // (path, succeeded, failed, success rate, attempts per success)
    let expected = [
        (stats_path(&flaky_action), 1, 1, 0.5, 2.0),
        (stats_path(&steady_action), 2, 0, 1.0, 1.0),
        ("/v1/stats".to_owned(), 3, 1, 0.75, 4.0 / 3.0),
    ];
    for (path, succeeded, failed, rate, attempts) in expected {
        let (status, stats) = sandbox
            .call(Method::GET, &path, Some(&tenant.key), None)
            .await;
        assert_eq!(status, 200, "{path}: {stats}");
        assert_eq!(
            stats["executions"]["succeeded"], succeeded,
            "{path}: {stats}"
        );
        assert_eq!(stats["executions"]["failed"], failed, "{path}: {stats}");
        assert_eq!(
            stats["executions"]["total"],
            succeeded + failed,
            "{path}: {stats}"
        );
        let got_rate = stats["success_rate"].as_f64().expect("a rate");
        assert!((got_rate - rate).abs() < 1e-9, "{path}: {stats}");
        let got_attempts = stats["attempts_per_success"].as_f64().expect("a ratio");
        assert!((got_attempts - attempts).abs() < 1e-9, "{path}: {stats}");
        assert!(
            stats["duration_ms"]["p50"].as_f64().is_some(),
            "{path}: {stats}"
        );
    }
    sandbox.stop().await;
}
