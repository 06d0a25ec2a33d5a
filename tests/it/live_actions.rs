//! Action changes reach every matcher replica within a second, without restarts.

use std::time::Duration;

use herald_common::config::ServiceName;
use herald_common::ids::ActionId;
use herald_tests::{Receiver, Sandbox, eventually};
use serde_json::json;

use crate::support::webhook_action;

/// Waits until every matcher replica holds `expected` live actions.
async fn replicas_hold(sandbox: &Sandbox, expected: f64, what: &str) {
    let replicas = sandbox.ops_addrs(ServiceName::Matcher);
    assert_eq!(replicas.len(), 2);
    eventually(what, Duration::from_secs(1), || async {
        for ops in &replicas {
            if sandbox.metric(*ops, "herald_actions_loaded").await? != expected {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_replica_sees_each_change_within_a_second() {
    let mut sandbox = Sandbox::start().await;
    sandbox.start_service(ServiceName::Matcher).await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    replicas_hold(&sandbox, 0.0, "both replicas to start empty").await;

    let action = sandbox
        .action(
            &tenant,
            webhook_action("live", "a.b", &receiver.url("/"), json!({})),
        )
        .await;
    let id = action["id"].as_str().unwrap().to_owned();
    replicas_hold(&sandbox, 1.0, "both replicas to see the new action").await;

    let pool = sandbox.store.pool().clone();
    let action_uuid = id.parse::<ActionId>().expect("an action id").as_uuid();
    let update = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .bind(action_uuid)
                .execute(&pool)
                .await
                .unwrap()
        }
    };
    update("UPDATE actions SET enabled = false, updated_at = now() WHERE id = $1").await;
    replicas_hold(&sandbox, 0.0, "both replicas to drop the disabled action").await;
    update("UPDATE actions SET enabled = true, updated_at = now() WHERE id = $1").await;
    replicas_hold(
        &sandbox,
        1.0,
        "both replicas to take the enabled action back",
    )
    .await;

    // A changed pattern is what both replicas match with: every event, whichever replica gets
    // it, finds the action.
    update("UPDATE actions SET event_types = '{a.*}', updated_at = now() WHERE id = $1").await;
    eventually(
        "the new pattern to apply",
        Duration::from_secs(1),
        || async {
            let matched = sandbox.event(&tenant, json!({"type": "a.probe"})).await;
            let view = eventually(
                "the probe to be matched",
                Duration::from_secs(10),
                || async {
                    let view = sandbox.event_view(&tenant, &matched).await;
                    (!view["matched_at"].is_null()).then_some(view)
                },
            )
            .await;
            (view["matched_count"] == 1).then_some(())
        },
    )
    .await;
    let mut events = Vec::new();
    for n in 0..8 {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "a.c", "data": {"n": n}}))
                .await,
        );
    }
    for event in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event, 1, Duration::from_secs(20))
            .await;
        assert_eq!(executions[0]["status"], "succeeded");
    }

    update("UPDATE actions SET deleted_at = now(), updated_at = now() WHERE id = $1").await;
    replicas_hold(&sandbox, 0.0, "both replicas to drop the deleted action").await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_may_hold_only_so_many_wildcards_and_regexes() {
    let sandbox = Sandbox::with(herald_tests::SandboxOptions {
        configure: |config| config.ingest.wildcard_budget_per_tenant = 3,
        ..Default::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let first = json!({"name": "wide", "event_types": ["user.*", "#"],
        "conditions": [{"path": "data.email", "op": "matches", "value": "@example\\.com$"}],
        "handler": {"type": "webhook", "url": "https://example.com/hook"}});
    sandbox.action(&tenant, first).await;
    let ingest = sandbox.ops_addrs(ServiceName::Ingest)[0];
    eventually(
        "ingest to see the action",
        Duration::from_secs(5),
        || async { (sandbox.metric(ingest, "herald_actions_loaded").await? == 1.0).then_some(()) },
    )
    .await;

    let exact = json!({"name": "exact", "event_types": ["user.created"],
        "handler": {"type": "webhook", "url": "https://example.com/hook"}});
    let (status, _) = sandbox.try_action(&tenant, exact).await;
    assert_eq!(status, 201, "exact patterns cost nothing");
    let over = json!({"name": "over", "event_types": ["order.#"],
        "handler": {"type": "webhook", "url": "https://example.com/hook"}});
    let (status, body) = sandbox.try_action(&tenant, over.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "wildcard_budget_exceeded");
    let other = sandbox.tenant().await;
    let (status, _) = sandbox.try_action(&other, over).await;
    assert_eq!(status, 201, "budgets are per tenant");
    sandbox.stop().await;
}

/// What a user does first: saves an action and at once sends an event it matches. The event
/// must find the action (the save answered before the event was accepted), however busy the
/// machine, with two matcher replicas.
#[tokio::test(flavor = "multi_thread")]
async fn an_action_saved_before_an_event_is_accepted_matches_it() {
    let mut sandbox = Sandbox::start().await;
    sandbox.start_service(ServiceName::Matcher).await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let mut events = Vec::new();
    for n in 0..40 {
        let event_type = format!("saved.then.sent{n}");
        sandbox
            .action(
                &tenant,
                webhook_action(
                    &format!("fresh{n}"),
                    &event_type,
                    &receiver.url("/"),
                    json!({}),
                ),
            )
            .await;
        events.push(sandbox.event(&tenant, json!({"type": event_type})).await);
    }
    for event in &events {
        let view = eventually(
            "the event to be matched",
            Duration::from_secs(20),
            || async {
                let view = sandbox.event_view(&tenant, event).await;
                (!view["matched_at"].is_null()).then_some(view)
            },
        )
        .await;
        assert_eq!(view["matched_count"], 1, "{view}");
    }
    sandbox.stop().await;
}
