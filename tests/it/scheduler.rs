//! The scheduler releases delayed jobs on time and in order, never twice from two replicas,
//! and loses none when it is killed mid-release.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use herald_common::broker::Outgoing;
use herald_common::broker::topology::{DELAYED_EXCHANGE, DELAYED_ROUTING_KEY};
use herald_common::config::ServiceName;
use herald_common::messages::DelayedJob;
use herald_tests::process::ServiceProcess;
use herald_tests::{Sandbox, SandboxOptions, eventually};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

/// The queue the test's jobs are released to (through the default exchange).
const TARGET: &str = "test.released";

/// A job released to `TARGET` whose body is its name.
fn job(name: &str, due_at: DateTime<Utc>) -> DelayedJob {
    DelayedJob {
        id: format!("test:{name}"),
        due_at,
        exchange: String::new(),
        routing_key: TARGET.into(),
        message_type: "test.job".into(),
        body: name.as_bytes().to_vec(),
        headers: BTreeMap::new(),
    }
}

/// A released job's name and when it arrived.
type Arrival = (String, DateTime<Utc>);

/// Every job released to `TARGET`, each copy as it arrived.
#[derive(Clone, Default)]
struct Released(Arc<Mutex<Vec<Arrival>>>);

impl Released {
    async fn collect(sandbox: &Sandbox) -> Self {
        let channel = sandbox.broker().await;
        channel
            .queue_declare(
                TARGET.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the target queue");
        let mut consumer = channel
            .basic_consume(
                TARGET.into(),
                "test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume the target queue");
        let released = Self::default();
        let sink = released.clone();
        tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let name = String::from_utf8_lossy(&delivery.data).into_owned();
                sink.0.lock().expect("lock").push((name, Utc::now()));
            }
        });
        released
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.0.lock().expect("lock").clone()
    }

    /// How many times each name arrived.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (name, _) in self.arrivals() {
            *counts.entry(name).or_default() += 1;
        }
        counts
    }

    async fn wait_for_distinct(&self, expected: usize, timeout: Duration) {
        eventually(
            &format!("{expected} distinct jobs released"),
            timeout,
            || async { (self.counts().len() >= expected).then_some(()) },
        )
        .await;
    }
}

fn scheduler_only() -> SandboxOptions {
    SandboxOptions {
        ingest: false,
        matcher: false,
        executor: false,
        ..SandboxOptions::default()
    }
}

async fn store_due_now(sandbox: &Sandbox, count: usize) {
    let now = Utc::now();
    let jobs: Vec<DelayedJob> = (0..count).map(|n| job(&format!("j{n}"), now)).collect();
    for chunk in jobs.chunks(5000) {
        sandbox
            .store
            .insert_delayed_jobs(chunk)
            .await
            .expect("store the jobs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn delays_are_honoured_in_order_and_a_short_one_is_not_held_behind_a_long_one() {
    let sandbox = Sandbox::with(scheduler_only()).await;
    let released = Released::collect(&sandbox).await;
    let channel = sandbox.broker().await;
    let now = Utc::now();
    // Handed over longest first, the way a retry of a slow endpoint can precede a short one.
    let jobs = [
        job("in-an-hour", now + chrono::Duration::hours(1)),
        job("third", now + chrono::Duration::milliseconds(2400)),
        job("first", now + chrono::Duration::milliseconds(800)),
        job("second", now + chrono::Duration::milliseconds(1600)),
    ];
    for delayed in &jobs {
        let outgoing = Outgoing::message(DELAYED_EXCHANGE, DELAYED_ROUTING_KEY, delayed);
        channel
            .basic_publish(
                outgoing.exchange.as_str().into(),
                outgoing.routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &outgoing.body,
                outgoing.properties,
            )
            .await
            .expect("publish a delayed job");
    }
    released.wait_for_distinct(3, Duration::from_secs(20)).await;

    let arrivals = released.arrivals();
    let names: Vec<&str> = arrivals.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"], "released in due order");
    for (name, arrived) in &arrivals {
        let due = jobs
            .iter()
            .find(|j| j.id == format!("test:{name}"))
            .expect("a known job")
            .due_at;
        let late = *arrived - due;
        assert!(
            late >= chrono::Duration::zero(),
            "{name} released early by {late}"
        );
        // The benchmark measures timeliness under load; here a generous bound for a busy CI.
        assert!(
            late < chrono::Duration::seconds(3),
            "{name} released {late} late"
        );
    }
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM delayed_jobs")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count");
    assert_eq!(waiting, 1, "only the job due in an hour is still held");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_never_release_the_same_job_twice() {
    let mut sandbox = Sandbox::with(scheduler_only()).await;
    sandbox.start_service(ServiceName::Scheduler).await;
    let released = Released::collect(&sandbox).await;
    store_due_now(&sandbox, 5000).await;
    released
        .wait_for_distinct(5000, Duration::from_secs(60))
        .await;
    // Anything released twice would arrive right behind the first copy.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let twice: Vec<_> = released
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(twice.is_empty(), "released more than once: {twice:?}");

    let mut per_replica = Vec::new();
    for ops in sandbox.ops_addrs(ServiceName::Scheduler) {
        per_replica.push(
            sandbox
                .metric(ops, "herald_delayed_jobs_released_total")
                .await
                .unwrap_or(0.0),
        );
    }
    assert_eq!(per_replica.iter().sum::<f64>(), 5000.0, "{per_replica:?}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scheduler_killed_mid_release_loses_no_job() {
    let mut sandbox = Sandbox::with(SandboxOptions::none()).await;
    let released = Released::collect(&sandbox).await;
    store_due_now(&sandbox, 20_000).await;

    let mut env = sandbox.env();
    // Small batches, so that the process is surely between a publish and its commit often.
    env.push(("HERALD_SCHEDULER__BATCH_SIZE".into(), "50".into()));
    let mut doomed = ServiceProcess::spawn("herald-scheduler", &env);
    eventually(
        "the first jobs to be released",
        Duration::from_secs(30),
        || async { (released.counts().len() >= 200).then_some(()) },
    )
    .await;
    doomed.kill_hard().await;
    let before_restart = released.counts().len();
    assert!(before_restart < 20_000, "killed before it finished");

    // Another replica takes over: the killed one's open transaction rolled back, so its batch
    // is back in the table.
    sandbox.start_service(ServiceName::Scheduler).await;
    released
        .wait_for_distinct(20_000, Duration::from_secs(90))
        .await;
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM delayed_jobs")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count");
    assert_eq!(waiting, 0);
    // At least once: only a batch the broker had confirmed but the database had not yet
    // committed can arrive twice.
    let twice = released.counts().values().filter(|n| **n > 1).count();
    assert!(
        twice <= 100,
        "{twice} jobs released twice; at most one batch per release loop may be"
    );
    eprintln!("killed after {before_restart} jobs; {twice} released twice");
    sandbox.stop().await;
}
