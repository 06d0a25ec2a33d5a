//! Admission control: past `ingest.max_backlog` events waiting for delivery, new events are
//! answered 503 `overloaded` with `Retry-After` and nothing is stored (from half of it on, a
//! growing share at random); past
//! `matcher.max_backlog` jobs waiting for the executor, the matcher takes no new batch. Both let
//! work in again by themselves once the executor catches up. The backlog is grown by running
//! without an executor, then starting one.

use std::time::Duration;

use herald_common::config::ServiceName;
use herald_tests::sandbox::{SandboxOptions, TestTenant};
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

/// A sandbox without an executor, its tenant and a webhook action for `order.placed`.
async fn without_executor(configure: fn(&mut herald_common::config::Config)) -> Setup {
    let sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        configure,
        ..SandboxOptions::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "hook",
                "order.placed",
                &receiver.url("/hook"),
                json!({"max_attempts": 1}),
            ),
        )
        .await;
    Setup {
        sandbox,
        receiver,
        tenant,
    }
}

struct Setup {
    sandbox: Sandbox,
    receiver: Receiver,
    tenant: TestTenant,
}

async fn post_event(setup: &Setup) -> (u16, Value, Option<String>) {
    let response = setup
        .sandbox
        .http_request(Method::POST, "/v1/events", &setup.tenant.key)
        .json(&json!({"type": "order.placed", "data": {"n": 1}}))
        .send()
        .await
        .expect("ingest answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

async fn backlog(sandbox: &Sandbox, service: ServiceName) -> f64 {
    let ops = sandbox.ops_addrs(service)[0];
    sandbox
        .metric(ops, "herald_admission_backlog_messages")
        .await
        .unwrap_or(0.0)
}

async fn stored_events(sandbox: &Sandbox) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count events")
}

async fn matched_events(sandbox: &Sandbox) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE matched_at IS NOT NULL")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count matched events")
}

/// Events ingest has refused at the HTTP door, from its metrics.
async fn deferred(sandbox: &Sandbox) -> f64 {
    let ops = sandbox.ops_addrs(ServiceName::Ingest)[0];
    sandbox
        .metric(
            ops,
            r#"herald_events_received_total{door="http",result="deferred"}"#,
        )
        .await
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_backlog_ingest_answers_overloaded_and_stores_nothing_until_delivery_catches_up() {
    let mut setup = without_executor(|config| {
        config.ingest.max_backlog = 3;
        config.matcher.max_backlog = 0;
    })
    .await;
    // One event at a time, each matched before the next: each is a message of its own, and so is
    // its job (a matcher batch of several events would publish their jobs as one message).
    for n in 1..=4 {
        // From half the limit on, a share of the requests is refused at random: send again
        // until one is let in (a refused one stores nothing).
        eventually("the event accepted", Duration::from_secs(10), || async {
            (post_event(&setup).await.0 == 202).then_some(())
        })
        .await;
        eventually("the event matched", Duration::from_secs(10), || async {
            (matched_events(&setup.sandbox).await == n).then_some(())
        })
        .await;
    }
    eventually(
        "ingest sees the jobs waiting",
        Duration::from_secs(10),
        || async { (backlog(&setup.sandbox, ServiceName::Ingest).await > 3.0).then_some(()) },
    )
    .await;
    let before = stored_events(&setup.sandbox).await;
    let deferred_before = deferred(&setup.sandbox).await;
    let (status, body, retry_after) = post_event(&setup).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(
        stored_events(&setup.sandbox).await,
        before,
        "nothing stored"
    );
    assert_eq!(
        deferred(&setup.sandbox).await,
        deferred_before + 1.0,
        "the refusal is counted"
    );

    setup.sandbox.start_service(ServiceName::Executor).await;
    eventually("events let in again", Duration::from_secs(15), || async {
        (post_event(&setup).await.0 == 202).then_some(())
    })
    .await;
    eventually(
        "every accepted event delivered",
        Duration::from_secs(15),
        || async {
            (setup.receiver.count() as i64 == stored_events(&setup.sandbox).await).then_some(())
        },
    )
    .await;
    setup.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_executor_backlog_the_matcher_waits_and_resumes_by_itself() {
    let mut setup = without_executor(|config| {
        config.ingest.max_backlog = 0;
        config.matcher.max_backlog = 2;
    })
    .await;
    for _ in 0..8 {
        let (status, body, _) = post_event(&setup).await;
        assert_eq!(status, 202, "{body}");
        // Apart, so that the matcher takes them one batch at a time and sees the backlog grow.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    eventually(
        "the matcher sees the jobs waiting",
        Duration::from_secs(10),
        || async { (backlog(&setup.sandbox, ServiceName::Matcher).await > 2.0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = matched_events(&setup.sandbox).await;
    assert!(held < 8, "the matcher held back: {held} of 8 matched");

    setup.sandbox.start_service(ServiceName::Executor).await;
    eventually("all eight delivered", Duration::from_secs(15), || async {
        (setup.receiver.count() == 8).then_some(())
    })
    .await;
    assert_eq!(matched_events(&setup.sandbox).await, 8);
    setup.sandbox.stop().await;
}
