//! Stuck work is sent again: an execution left `processing` by an executor that died past its
//! lease, and one whose job was lost. The scheduler runs on a manual clock, so the test moves
//! time past the lease instead of waiting for it.

use std::time::Duration;

use herald_common::broker::topology::EXECUTOR_FIRST_QUEUE;
use herald_common::clock::ManualClock;
use herald_common::config::ServiceName;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox, SandboxOptions};
use lapin::options::QueuePurgeOptions;
use serde_json::json;

use crate::support::webhook_action;

/// A sandbox whose executor is not yet running and whose scheduler runs on `clock`, with an
/// event matched to one webhook action whose job has been lost.
async fn lost_job(clock: &ManualClock) -> (Sandbox, Receiver, TestTenant, String) {
    let mut sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        scheduler: false,
        configure: |config| {
            config.scheduler.recovery_interval_s = 1;
            config.scheduler.overdue_after_s = 600;
        },
        ..SandboxOptions::default()
    })
    .await;
    sandbox.start_scheduler_on(clock.clone()).await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &receiver.url("/"), json!({})),
        )
        .await;
    let event_id = sandbox.event(&tenant, json!({"type": "order.paid"})).await;
    let execution_id = herald_tests::eventually(
        "the execution to be recorded",
        Duration::from_secs(20),
        || async {
            let event = sandbox.event_view(&tenant, &event_id).await;
            event["executions"][0]["id"].as_str().map(str::to_owned)
        },
    )
    .await;
    // The job is lost: nothing in the broker will ever carry this execution again.
    let channel = sandbox.broker().await;
    herald_tests::eventually("the job to be queued", Duration::from_secs(10), || async {
        let purged = channel
            .queue_purge(EXECUTOR_FIRST_QUEUE.into(), QueuePurgeOptions::default())
            .await
            .ok()?;
        (purged > 0).then_some(())
    })
    .await;
    (sandbox, receiver, tenant, execution_id)
}

async fn recovered(sandbox: &Sandbox, reason: &str) -> f64 {
    let ops = sandbox.ops_addrs(ServiceName::Scheduler)[0];
    let series = format!("herald_executions_recovered_total{{reason=\"{reason}\"}}");
    sandbox.metric(ops, &series).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_stuck_in_processing_past_its_lease_is_sent_again() {
    let clock = ManualClock::new(chrono::Utc::now());
    let (mut sandbox, receiver, tenant, execution_id) = lost_job(&clock).await;
    // What an executor that died mid-attempt leaves behind (see `Store::mark_processing`).
    let uuid = execution_id
        .parse::<herald_common::ids::ExecutionId>()
        .expect("execution id")
        .as_uuid();
    sqlx::query(
        "UPDATE executions SET status = 'processing', attempts = 1,
           lease_until = now() + interval '300 seconds' WHERE id = $1",
    )
    .bind(uuid)
    .execute(sandbox.store.pool())
    .await
    .expect("mark processing");
    sandbox.start_service(ServiceName::Executor).await;

    // Within its lease the execution is left alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sandbox.execution(&tenant, &execution_id).await["status"],
        "processing"
    );
    assert_eq!(receiver.count(), 0);

    clock.advance(chrono::Duration::seconds(301));
    let execution = herald_tests::eventually(
        "the execution to be recovered and delivered",
        Duration::from_secs(30),
        || async {
            let execution = sandbox.execution(&tenant, &execution_id).await;
            (execution["status"] == "succeeded").then_some(execution)
        },
    )
    .await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(receiver.received()[0].header("webhook-id"), execution_id);
    // The attempt the dead executor had started is made again, not a new one.
    assert_eq!(execution["attempts"].as_array().map(Vec::len), Some(1));
    assert_eq!(execution["attempts"][0]["attempt"], 1);
    assert_eq!(recovered(&sandbox, "lease_expired").await, 1.0);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_whose_job_was_lost_is_sent_again_once_overdue() {
    let clock = ManualClock::new(chrono::Utc::now());
    let (mut sandbox, receiver, tenant, execution_id) = lost_job(&clock).await;
    sandbox.start_service(ServiceName::Executor).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sandbox.execution(&tenant, &execution_id).await["status"],
        "pending"
    );

    clock.advance(chrono::Duration::seconds(601));
    herald_tests::eventually(
        "the execution to be recovered and delivered",
        Duration::from_secs(30),
        || async {
            let execution = sandbox.execution(&tenant, &execution_id).await;
            (execution["status"] == "succeeded").then_some(())
        },
    )
    .await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(recovered(&sandbox, "overdue").await, 1.0);
    sandbox.stop().await;
}
