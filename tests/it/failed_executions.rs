//! What an operator does with failed work: the dead-letter view (failed executions, newest
//! first, page by page), a retry of one, a retry of everything matching a filter (carried out
//! page by page with bounded memory), and cancelling scheduled work.

use std::time::Duration;

use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_tests::process::ServiceProcess;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox, SandboxOptions, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

async fn call(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    sandbox.call(method, path, Some(&tenant.key), body).await
}

/// Sends `count` events to an action whose endpoint answers 400, and waits until every
/// execution has failed; returns their ids, oldest first.
async fn failed_executions(sandbox: &Sandbox, tenant: &TestTenant, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event_id = sandbox
            .event(tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        let executions = sandbox
            .terminal_executions(tenant, &event_id, 1, Duration::from_secs(30))
            .await;
        assert_eq!(executions[0]["status"], "failed");
        ids.push(executions[0]["id"].as_str().expect("id").to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_executions_are_listed_newest_first_and_one_retry_sends_one_more_attempt() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.fallback(Reply::status(400));
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;
    let ids = failed_executions(&sandbox, &tenant, 3).await;

    let (status, first) = call(
        &sandbox,
        &tenant,
        Method::GET,
        "/v1/executions?status=failed&limit=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let listed: Vec<&str> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = call(
        &sandbox,
        &tenant,
        Method::GET,
        &format!("/v1/executions?status=failed&limit=2&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["data"][0]["id"], ids[0]);
    assert_eq!(second["next_cursor"], Value::Null);

    for (query, parameter) in [
        ("status=broken", "status"),
        ("limit=0", "limit"),
        ("cursor=nonsense", "cursor"),
        ("since=yesterday", "since"),
        ("colour=blue", "colour"),
    ] {
        let (status, body) = call(
            &sandbox,
            &tenant,
            Method::GET,
            &format!("/v1/executions?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(parameter),
            "{body}"
        );
    }

    // The endpoint is mended; one execution is retried.
    receiver.fallback(Reply::status(200));
    let (status, retried) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &format!("/v1/executions/{}/retry", ids[0]),
        None,
    )
    .await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["status"], "retry_scheduled");
    let execution = eventually("the retry to succeed", Duration::from_secs(30), || async {
        let execution = sandbox.execution(&tenant, &ids[0]).await;
        (execution["status"] == "succeeded").then_some(execution)
    })
    .await;
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(2));
    let received = receiver.received();
    assert_eq!(
        received.last().expect("a delivery").header("webhook-id"),
        ids[0]
    );

    // A succeeded execution may be replayed; another tenant cannot see the execution.
    let (status, body) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &format!("/v1/executions/{}/retry", ids[0]),
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let other = sandbox.tenant().await;
    for path in [
        format!("/v1/executions/{}/retry", ids[1]),
        format!("/v1/executions/{}/cancel", ids[1]),
    ] {
        let (status, body) = call(&sandbox, &other, Method::POST, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_scheduled_retry() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.fallback(Reply::status(503));
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "hook",
                "order.paid",
                &receiver.url("/"),
                json!({"max_attempts": 3, "delays_s": [3600]}),
            ),
        )
        .await;
    let event_id = sandbox.event(&tenant, json!({"type": "order.paid"})).await;
    let execution_id = eventually(
        "the retry to be scheduled",
        Duration::from_secs(30),
        || async {
            let event = sandbox.event_view(&tenant, &event_id).await;
            let execution = &event["executions"][0];
            (execution["status"] == "retry_scheduled")
                .then(|| execution["id"].as_str().map(str::to_owned))
                .flatten()
        },
    )
    .await;
    let uuid = execution_id.parse::<ExecutionId>().expect("id").as_uuid();
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM delayed_jobs WHERE id LIKE $1 || ':%'")
            .bind(uuid.to_string())
            .fetch_one(sandbox.store.pool())
            .await
            .expect("count")
    };
    eventually(
        "the retry to wait at the scheduler",
        Duration::from_secs(10),
        || async { (waiting().await == 1).then_some(()) },
    )
    .await;

    // Work still under way cannot be retried.
    let (status, body) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &format!("/v1/executions/{execution_id}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("execution_not_finished")),
        "{body}"
    );

    let (status, cancelled) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &format!("/v1/executions/{execution_id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(waiting().await, 0, "the scheduled retry is dropped");
    let (status, body) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &format!("/v1/executions/{execution_id}/cancel"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("execution_finished")),
        "{body}"
    );
    assert_eq!(receiver.count(), 1);
    sandbox.stop().await;
}

/// Peak and current resident memory of a process, in KiB, from /proc.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_retry_of_10k_failed_executions_completes_page_by_page_in_bounded_memory() {
    const COUNT: i64 = 10_000;
    // 4 KiB of payload per event: 40 MiB if every execution were loaded at once.
    const PAD: i32 = 4096;
    let sandbox = Sandbox::with(SandboxOptions {
        scheduler: false,
        ..SandboxOptions::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let action = sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;
    let tenant_id = tenant.id.parse::<TenantId>().expect("tenant id").as_uuid();
    let action_id = action["id"]
        .as_str()
        .expect("id")
        .parse::<ActionId>()
        .expect("action id")
        .as_uuid();
    // 10k events whose executions failed an hour ago, as the executor would have left them.
    sqlx::query(
        "INSERT INTO events (tenant_id, id, type, data, received_at, matched_at, matched_count)
         SELECT $1, 'bulk-' || g, 'order.paid', json_build_object('n', g, 'pad', repeat('x', $3)),
                now() - interval '1 hour', now() - interval '1 hour', 1
         FROM generate_series(1, $2) g",
    )
    .bind(tenant_id)
    .bind(COUNT)
    .bind(PAD)
    .execute(sandbox.store.pool())
    .await
    .expect("insert events");
    sqlx::query(
        "INSERT INTO executions (id, tenant_id, event_id, action_id, status, attempts, max_attempts,
                                 priority, created_at, updated_at, finished_at, last_error)
         SELECT gen_random_uuid(), $1, 'bulk-' || g, $2, 'failed', 1, 1, 100,
                now() - interval '1 hour' + g * interval '1 ms', now(), now(), 'HTTP 500'
         FROM generate_series(1, $3) g",
    )
    .bind(tenant_id)
    .bind(action_id)
    .bind(COUNT)
    .execute(sandbox.store.pool())
    .await
    .expect("insert failed executions");

    // Pages of 100: the scheduler's memory is bounded by a page, whatever the set's size.
    let mut env = sandbox.env();
    env.push(("HERALD_SCHEDULER__BULK_RETRY_PAGE".into(), "100".into()));
    env.push(("HERALD_SCHEDULER__BATCH_SIZE".into(), "100".into()));
    let scheduler = ServiceProcess::spawn("herald-scheduler", &env);
    let pid = scheduler.child.id().expect("scheduler pid");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, baseline_kib) = memory_kib(pid);

    let (status, bulk) = call(
        &sandbox,
        &tenant,
        Method::POST,
        "/v1/executions/retry",
        Some(json!({"action_id": action["id"], "status": "failed"})),
    )
    .await;
    assert_eq!(status, 202, "{bulk}");
    assert_eq!(bulk["status"], "running");
    let path = format!("/v1/bulk-retries/{}", bulk["id"].as_str().expect("id"));
    let seen = std::sync::Mutex::new(Vec::new());
    let done = eventually(
        "the bulk retry to finish",
        Duration::from_secs(120),
        || async {
            let (status, bulk) = call(&sandbox, &tenant, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{bulk}");
            let retried = bulk["retried"].as_i64().unwrap_or(0);
            seen.lock().expect("lock").push(retried);
            (bulk["status"] == "done").then_some(bulk)
        },
    )
    .await;
    assert_eq!(done["retried"], COUNT);
    // Page by page: progress shows in steps of the page size.
    let steps: std::collections::BTreeSet<i64> = seen
        .lock()
        .expect("lock")
        .iter()
        .copied()
        .filter(|n| *n > 0 && *n < COUNT)
        .collect();
    assert!(
        steps.iter().all(|n| n % 100 == 0),
        "progress in whole pages: {steps:?}"
    );

    eventually(
        "every retried execution to succeed",
        Duration::from_secs(180),
        || async {
            let succeeded: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM executions WHERE tenant_id = $1 AND status = 'succeeded'",
            )
            .bind(tenant_id)
            .fetch_one(sandbox.store.pool())
            .await
            .expect("count");
            (succeeded == COUNT).then_some(())
        },
    )
    .await;
    let (peak_kib, _) = memory_kib(pid);
    let grew_mib = peak_kib.saturating_sub(baseline_kib) / 1024;
    eprintln!(
        "scheduler: {} MiB at rest, peak {} MiB during the bulk retry",
        baseline_kib / 1024,
        peak_kib / 1024
    );
    assert!(
        grew_mib < 20,
        "the scheduler grew by {grew_mib} MiB; the whole set is 40 MiB"
    );
    assert!(receiver.count() >= COUNT as usize);
    drop(scheduler);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_retry_by_action_reopens_only_that_actions_failed_executions() {
    let sandbox = Sandbox::start().await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    first.fallback(Reply::status(400));
    second.fallback(Reply::status(400));
    let tenant = sandbox.tenant().await;
    let retried_action = sandbox
        .action(
            &tenant,
            webhook_action("first", "order.paid", &first.url("/"), json!({})),
        )
        .await;
    let other_action = sandbox
        .action(
            &tenant,
            webhook_action("second", "order.paid", &second.url("/"), json!({})),
        )
        .await;
    let mut executions = Vec::new();
    for n in 0..2 {
        let event_id = sandbox
            .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        executions.extend(
            sandbox
                .terminal_executions(&tenant, &event_id, 2, Duration::from_secs(30))
                .await,
        );
    }
    assert!(executions.iter().all(|e| e["status"] == "failed"));
    let (retried, others): (Vec<Value>, Vec<Value>) = executions
        .into_iter()
        .partition(|e| e["action_id"] == retried_action["id"]);
    assert_eq!((retried.len(), others.len()), (2, 2));
    assert!(others.iter().all(|e| e["action_id"] == other_action["id"]));

    // Both endpoints are mended; only the first action's executions are retried.
    first.fallback(Reply::status(200));
    second.fallback(Reply::status(200));
    let done = sandbox
        .bulk_retry_to_the_end(&tenant.key, json!({"action_id": retried_action["id"]}))
        .await;
    assert_eq!(done["retried"], 2, "{done}");
    for execution in &retried {
        let id = execution["id"].as_str().expect("id");
        eventually(
            "a retried execution to succeed",
            Duration::from_secs(30),
            || async {
                (sandbox.execution(&tenant, id).await["status"] == "succeeded").then_some(())
            },
        )
        .await;
    }
    // The bulk retry reopens each page in one transaction, so once it is done an execution it
    // did not take is untouched.
    for execution in &others {
        let id = execution["id"].as_str().expect("id");
        let now = sandbox.execution(&tenant, id).await;
        assert_eq!(now["status"], "failed", "{now}");
        assert_eq!(now["attempts"].as_array().map(Vec::len), Some(1), "{now}");
    }
    assert_eq!((first.count(), second.count()), (4, 2));
    sandbox.stop().await;
}
