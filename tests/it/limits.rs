//! Per-action limits hold across executor replicas: `rate_limit_per_s` (a token bucket
//! holding one second's worth) and `max_concurrency`. Work over a limit waits; none is lost.

use std::time::Duration;

use herald_common::config::ServiceName;
use herald_tests::{Receiver, Reply, Sandbox};
use serde_json::json;

use crate::support::webhook_action;

#[tokio::test(flavor = "multi_thread")]
async fn rate_and_concurrency_limits_hold_across_two_executors() {
    let mut sandbox = Sandbox::start().await;
    sandbox.start_service(ServiceName::Executor).await;
    let tenant = sandbox.tenant().await;
    let rated = Receiver::start().await;
    let narrow = Receiver::start().await;
    narrow.fallback(Reply::status(200).after(Duration::from_millis(300)));
    let retry = json!({"max_attempts": 3, "delays_s": [1]});
    let mut rate_action = webhook_action("rated", "rate.x", &rated.url("/hook"), retry.clone());
    rate_action["rate_limit_per_s"] = json!(5);
    sandbox.action(&tenant, rate_action).await;
    let mut narrow_action = webhook_action("narrow", "conc.x", &narrow.url("/hook"), retry);
    narrow_action["max_concurrency"] = json!(2);
    sandbox.action(&tenant, narrow_action).await;

    let mut events = Vec::new();
    for n in 0..20 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "rate.x", "data": {"n": n}}))
                .await,
        );
    }
    for n in 0..10 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "conc.x", "data": {"n": n}}))
                .await,
        );
    }
    for event_id in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event_id, 1, Duration::from_secs(60))
            .await;
        assert_eq!(executions[0]["status"], "succeeded", "{}", executions[0]);
    }

    // Rate: five at once, then five a second; so no second holds more than ten, and twenty
    // take at least three seconds (2.5 allowed for timer slack).
    let arrivals: Vec<_> = rated.received().iter().map(|r| r.at).collect();
    assert_eq!(arrivals.len(), 20);
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(
        span >= Duration::from_millis(2500),
        "20 deliveries in {span:?}"
    );
    for window in arrivals.windows(11) {
        assert!(
            window[10] - window[0] >= Duration::from_millis(950),
            "eleven deliveries within {:?}",
            window[10] - window[0]
        );
    }

    // Concurrency: each request is answered after 300 ms, so at most two arrive within any
    // 300 ms.
    let arrivals: Vec<_> = narrow.received().iter().map(|r| r.at).collect();
    assert_eq!(arrivals.len(), 10);
    for window in arrivals.windows(3) {
        assert!(
            window[2] - window[0] >= Duration::from_millis(290),
            "three requests in flight at once ({:?} apart)",
            window[2] - window[0]
        );
    }
    sandbox.stop().await;
}
