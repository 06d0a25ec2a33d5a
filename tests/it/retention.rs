//! Retention deletes old events, executions and attempts in small batches, and never work
//! still under way.

use std::time::Duration;

use herald_common::config::ServiceName;
use herald_common::ids::TenantId;
use herald_tests::{Sandbox, SandboxOptions, eventually};
use uuid::Uuid;

/// Records of `tenant` from `age_days` ago: `count` events, each with one execution in
/// `status` and one attempt.
async fn records(
    sandbox: &Sandbox,
    tenant: Uuid,
    prefix: &str,
    count: i32,
    age_days: i32,
    status: &str,
) {
    let pool = sandbox.store.pool();
    let at = format!("now() - interval '{age_days} days'");
    sqlx::query(&format!(
        "INSERT INTO events (tenant_id, id, type, data, received_at, matched_at, matched_count)
         SELECT $1, $2 || g, 'order.paid', '{{}}', {at}, {at}, 1 FROM generate_series(1, $3) g"
    ))
    .bind(tenant)
    .bind(prefix)
    .bind(count)
    .execute(pool)
    .await
    .expect("insert events");
    let finished = if status == "pending" {
        "NULL".to_owned()
    } else {
        at.clone()
    };
    sqlx::query(&format!(
        "WITH made AS (
           INSERT INTO executions (id, tenant_id, event_id, action_id, status, attempts,
                                   max_attempts, priority, created_at, updated_at, finished_at)
           SELECT gen_random_uuid(), $1, $2 || g, gen_random_uuid(), $4, 1, 5, 100, {at}, {at},
                  {finished}
           FROM generate_series(1, $3) g
           RETURNING id)
         INSERT INTO attempts (id, execution_id, tenant_id, attempt, started_at, duration_ms,
                               request_url, outcome)
         SELECT gen_random_uuid(), id, $1, 1, {at}, 5, 'https://example.com/', 'retrying' FROM made"
    ))
    .bind(tenant)
    .bind(prefix)
    .bind(count)
    .bind(status)
    .execute(pool)
    .await
    .expect("insert executions and attempts");
}

async fn count(sandbox: &Sandbox, table: &str, prefix_column: &str, prefix: &str) -> i64 {
    let sql = if table == "attempts" {
        "SELECT count(*) FROM attempts a JOIN executions e ON e.id = a.execution_id
         WHERE e.event_id LIKE $1 || '%'"
            .to_owned()
    } else {
        format!("SELECT count(*) FROM {table} WHERE {prefix_column} LIKE $1 || '%'")
    };
    sqlx::query_scalar(&sql)
        .bind(prefix)
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread")]
async fn old_finished_records_are_deleted_and_live_work_is_kept() {
    let sandbox = Sandbox::with(SandboxOptions {
        ingest: true,
        matcher: false,
        executor: false,
        scheduler: false,
        configure: |config| {
            config.retention.batch_size = 100;
            config.retention.interval_s = 1;
        },
    })
    .await;
    let tenant = sandbox.tenant().await;
    let tenant = tenant.id.parse::<TenantId>().expect("tenant id").as_uuid();
    records(&sandbox, tenant, "old-", 450, 40, "succeeded").await;
    records(&sandbox, tenant, "old-pending-", 3, 40, "pending").await;
    records(&sandbox, tenant, "recent-", 20, 1, "failed").await;

    // An old one-off delivery: its action goes with its execution; an ordinary action stays.
    for (name, one_off) in [("delivery old-x", true), ("kept", false)] {
        sqlx::query(
            "WITH action AS (
               INSERT INTO actions (id, tenant_id, name, event_types, handler_type, handler, retry,
                                    one_off)
               VALUES (gen_random_uuid(), $1, $2, '{}', 'webhook', '{}', '{}', $3) RETURNING id)
             INSERT INTO executions (id, tenant_id, event_id, action_id, status, attempts,
                                     max_attempts, priority, created_at, updated_at, finished_at)
             SELECT gen_random_uuid(), $1, 'old-x-' || $2, id, 'succeeded', 1, 1, 100,
                    now() - interval '40 days', now() - interval '40 days',
                    now() - interval '40 days'
             FROM action",
        )
        .bind(tenant)
        .bind(name)
        .bind(one_off)
        .execute(sandbox.store.pool())
        .await
        .expect("insert an action and its execution");
    }
    let mut sandbox = sandbox;
    sandbox.start_service(ServiceName::Scheduler).await;
    eventually(
        "old records to be deleted",
        Duration::from_secs(30),
        || async {
            let left = count(&sandbox, "events", "id", "old-").await;
            (left == 3).then_some(())
        },
    )
    .await;
    // Executions (with their attempts) go first; an event goes once it has none left.
    assert_eq!(count(&sandbox, "executions", "event_id", "old-").await, 3);
    assert_eq!(
        count(&sandbox, "executions", "event_id", "old-pending-").await,
        3,
        "work under way is kept"
    );
    assert_eq!(
        count(&sandbox, "attempts", "", "old-pending-").await,
        0,
        "attempts have their own retention"
    );
    assert_eq!(count(&sandbox, "events", "id", "recent-").await, 20);
    assert_eq!(
        count(&sandbox, "executions", "event_id", "recent-").await,
        20
    );
    assert_eq!(count(&sandbox, "attempts", "", "recent-").await, 20);

    let ops = sandbox.ops_addrs(ServiceName::Scheduler)[0];
    let deleted = |table: &'static str| {
        let sandbox = &sandbox;
        async move {
            sandbox
                .metric(
                    ops,
                    &format!("herald_retention_deleted_rows_total{{table=\"{table}\"}}"),
                )
                .await
                .unwrap_or(0.0)
        }
    };
    let actions: Vec<String> = sqlx::query_scalar("SELECT name FROM actions WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(sandbox.store.pool())
        .await
        .expect("actions");
    assert_eq!(
        actions,
        ["kept"],
        "a delivery's action goes with its execution"
    );
    assert_eq!(deleted("executions").await, 452.0);
    assert_eq!(deleted("actions").await, 1.0);
    assert_eq!(deleted("events").await, 450.0);
    // 453 old attempts: 450 with their executions or on their own, and the pending ones' 3.
    assert_eq!(deleted("attempts").await, 453.0);
    sandbox.stop().await;
}
