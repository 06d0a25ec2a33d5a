//! Faults under a steady load of events over HTTP: `kill -9` of each service, a broker restart
//! (`stop_app`/`start_app`) and a broker crash (`kill -9`), a database restart and crash, and a
//! receiver that hangs beside healthy ones. After each, one checker reads the audit trail and
//! what the receivers got: every accepted event is stored and matched; every execution it
//! should have exists and is terminal; every delivery names its execution as `webhook-id`;
//! deliveries beyond the attempts recorded (the duplicates a crash may cause) are counted and
//! printed. Nothing is restarted by hand except the service or server the fault took down.
//!
//! The broker and database faults run on servers of their own (`herald_tests::servers`): the
//! suite's shared ones serve every other test at the same time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_common::config::{Config, ServiceName};
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_tests::process::ServiceProcess;
use herald_tests::receiver::Received;
use herald_tests::sandbox::{Servers, TestTenant};
use herald_tests::servers::{PrivatePostgres, PrivateRabbit, free_port};
use herald_tests::{Receiver, Reply, Sandbox, SandboxOptions, eventually};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::support::webhook_action;

/// The load: three events every 10 ms, 300 events/s.
const EVENTS_PER_TICK: usize = 3;
const TICK: Duration = Duration::from_millis(10);
/// Events sent in each phase of a scenario (about a second at the load's rate).
const PHASE: usize = 300;
/// Requests in flight at most: a tick finding them all busy sends nothing, so a stalled ingest
/// does not pile up thousands of waiting requests.
const MAX_IN_FLIGHT: usize = 128;
/// Longest the work may take to settle after a fault. An event stored but never published (its
/// ingest died between the commit and the publish) waits for the outbox sweep: 30 s, swept
/// every 5 s.
const SETTLE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// The load

/// What the load sent and what ingest answered.
#[derive(Default)]
struct Tally {
    /// Events answered 2xx: accepted, so they must all be delivered.
    accepted: Vec<String>,
    sent_at: HashMap<String, Instant>,
    /// Requests not accepted, by answer or error.
    refused: BTreeMap<String, usize>,
    /// Ticks' requests not sent because `MAX_IN_FLIGHT` were waiting already.
    held_back: usize,
}

/// Events posted one per request at a steady rate until finished.
struct Load {
    sent: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts sending events to the ingest at `api` (read for every request, so that a
    /// replacement ingest on another port takes over) with event types from `event_type(n)`.
    fn start(
        http: reqwest::Client,
        api: Arc<Mutex<String>>,
        key: String,
        event_type: fn(usize) -> &'static str,
    ) -> Self {
        let sent = Arc::new(AtomicUsize::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(send_events(
            http,
            api,
            key,
            event_type,
            sent.clone(),
            tally.clone(),
            stop.clone(),
        ));
        Self {
            sent,
            tally,
            stop,
            task,
        }
    }

    /// Waits while the load sends `more` events (it goes on afterwards).
    async fn run_for(&self, more: usize) {
        let target = self.sent.load(Ordering::Relaxed) + more;
        eventually(
            &format!("the load to send {more} more events"),
            Duration::from_secs(60),
            || async { (self.sent.load(Ordering::Relaxed) >= target).then_some(()) },
        )
        .await;
    }

    /// Stops sending, waits for the answers still due and returns the tally.
    async fn finish(self) -> Tally {
        self.stop.cancel();
        self.task.await.expect("the load's task");
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

async fn send_events(
    http: reqwest::Client,
    api: Arc<Mutex<String>>,
    key: String,
    event_type: fn(usize) -> &'static str,
    sent: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut requests = JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    let mut n = 0;
    let record = |(id, at, answer): (String, Instant, Result<u16, String>)| {
        let mut tally = tally.lock().unwrap();
        tally.sent_at.insert(id.clone(), at);
        match answer {
            Ok(status) if (200..300).contains(&status) => tally.accepted.push(id),
            Ok(status) => *tally.refused.entry(status.to_string()).or_default() += 1,
            Err(error) => *tally.refused.entry(error).or_default() += 1,
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        for _ in 0..EVENTS_PER_TICK {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tally.lock().unwrap().held_back += 1;
                continue;
            };
            let id = format!("ev-{n}");
            let body = json!({"id": id, "type": event_type(n), "data": {"n": n}});
            n += 1;
            let request = http
                .post(format!("{}/v1/events", api.lock().unwrap()))
                .bearer_auth(&key)
                .timeout(Duration::from_secs(10))
                .json(&body);
            requests.spawn(async move {
                let at = Instant::now();
                let answer = match request.send().await {
                    Ok(response) => Ok(response.status().as_u16()),
                    Err(e) if e.is_connect() => Err("connection refused".to_owned()),
                    Err(e) if e.is_timeout() => Err("timed out".to_owned()),
                    Err(_) => Err("connection failed".to_owned()),
                };
                drop(permit);
                (id, at, answer)
            });
            sent.fetch_add(1, Ordering::Relaxed);
        }
        while let Some(done) = requests.try_join_next() {
            record(done.expect("a request's task"));
        }
    }
    while let Some(done) = requests.join_next().await {
        record(done.expect("a request's task"));
    }
}

// ---------------------------------------------------------------------------------------
// The actions and the checker

/// What must become of an action's executions.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Succeeded,
    /// Succeeded, or failed with every attempt spent (a receiver that fails now and then).
    Finished,
    /// Failed after exactly this many attempts.
    FailedAfter(i32),
}

/// One action of a scenario: its receiver, the event types it takes, what must become of it.
struct Route<'a> {
    name: &'static str,
    receiver: &'a Receiver,
    event_types: &'static [&'static str],
    action: uuid::Uuid,
    outcome: Outcome,
}

async fn route<'a>(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    name: &'static str,
    receiver: &'a Receiver,
    event_types: &'static [&'static str],
    handler: Value,
    outcome: Outcome,
) -> Route<'a> {
    let mut spec = webhook_action(name, event_types[0], &receiver.url("/hook"), json!({}));
    spec["event_types"] = json!(event_types);
    for (field, value) in handler.as_object().expect("handler fields") {
        if field == "retry" {
            spec["retry"] = value.clone();
        } else {
            spec["handler"][field] = value.clone();
        }
    }
    let action = sandbox.action(tenant, spec).await;
    let id: ActionId = action["id"].as_str().expect("action id").parse().unwrap();
    Route {
        name,
        receiver,
        event_types,
        action: id.as_uuid(),
        outcome,
    }
}

/// A receiver that answers 503 to every third request and 200 to the others, so that a good
/// share of the executions goes through a retry (and the scheduler).
async fn flaky_receiver() -> Receiver {
    let receiver = Receiver::start().await;
    receiver
        .script((0..30_000u32).map(|n| Reply::status(if n.is_multiple_of(3) { 503 } else { 200 })));
    receiver
}

/// A receiver that answers 200 after 20 ms, so that deliveries are in flight at any moment.
async fn steady_receiver() -> Receiver {
    let receiver = Receiver::start().await;
    receiver.fallback(Reply::status(200).after(Duration::from_millis(20)));
    receiver
}

/// The two actions every crash scenario uses, on the event type `fault.tick`.
async fn crash_routes<'a>(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    steady: &'a Receiver,
    flaky: &'a Receiver,
) -> Vec<Route<'a>> {
    let retry = json!({"retry": {"max_attempts": 5, "delays_s": [1]}});
    vec![
        route(
            sandbox,
            tenant,
            "steady",
            steady,
            &["fault.tick"],
            retry.clone(),
            Outcome::Succeeded,
        )
        .await,
        route(
            sandbox,
            tenant,
            "flaky",
            flaky,
            &["fault.tick"],
            retry,
            Outcome::Finished,
        )
        .await,
    ]
}

/// Waits until every matcher at `matchers` holds the scenario's actions: an action starts to
/// match once the matchers' change feed has brought it, and an event matched before that
/// would rightly have no execution for it.
async fn actions_live(sandbox: &Sandbox, matchers: &[SocketAddr], routes: &[Route<'_>]) {
    eventually(
        "the matchers to hold the actions",
        Duration::from_secs(30),
        || async {
            for ops in matchers {
                let loaded = sandbox.metric(*ops, "herald_actions_loaded").await?;
                if loaded != routes.len() as f64 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

fn tick_events(_: usize) -> &'static str {
    "fault.tick"
}

/// One execution as the audit trail has it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Execution {
    id: uuid::Uuid,
    event_id: String,
    action_id: uuid::Uuid,
    status: String,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
}

struct Snapshot {
    /// Every stored event of the tenant: its type and whether it was matched.
    events: HashMap<String, (String, bool)>,
    executions: Vec<Execution>,
}

async fn snapshot(sandbox: &Sandbox, tenant: TenantId) -> Result<Snapshot, sqlx::Error> {
    let events: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT id, type, matched_at IS NOT NULL FROM events WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_all(sandbox.store.pool())
            .await?;
    let executions: Vec<Execution> = sqlx::query_as(
        "SELECT id, event_id, action_id, status, attempts, max_attempts, last_error
         FROM executions WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .fetch_all(sandbox.store.pool())
    .await?;
    Ok(Snapshot {
        events: events
            .into_iter()
            .map(|(id, kind, matched)| (id, (kind, matched)))
            .collect(),
        executions,
    })
}

/// What keeps `snapshot` from being settled: events not matched, executions missing, extra
/// or not terminal.
fn unsettled(snapshot: &Snapshot, routes: &[Route<'_>]) -> Vec<String> {
    let mut by_event: HashMap<&str, Vec<&Execution>> = HashMap::new();
    for execution in &snapshot.executions {
        by_event
            .entry(execution.event_id.as_str())
            .or_default()
            .push(execution);
    }
    let mut problems = Vec::new();
    for (id, (kind, matched)) in &snapshot.events {
        if !matched {
            problems.push(format!("event {id} not matched"));
            continue;
        }
        let expected: HashSet<uuid::Uuid> = routes
            .iter()
            .filter(|r| r.event_types.contains(&kind.as_str()))
            .map(|r| r.action)
            .collect();
        let executions = by_event.get(id.as_str()).cloned().unwrap_or_default();
        let actual: HashSet<uuid::Uuid> = executions.iter().map(|e| e.action_id).collect();
        if actual != expected || executions.len() != expected.len() {
            problems.push(format!(
                "event {id}: {} executions for {} matching actions",
                executions.len(),
                expected.len()
            ));
        }
        for execution in executions {
            if !matches!(execution.status.as_str(), "succeeded" | "failed") {
                problems.push(format!(
                    "event {id}: execution {} is {} after {} attempts ({})",
                    ExecutionId::from(execution.id),
                    execution.status,
                    execution.attempts,
                    execution.last_error.as_deref().unwrap_or("no error")
                ));
            }
        }
    }
    problems.sort();
    problems
}

/// The checker every scenario ends with; returns the number of duplicate deliveries.
///
/// Nothing lost: every event accepted with a 2xx is stored. Every stored event (accepted or
/// not: a request cut by a fault may still have been stored) is matched and has exactly one
/// execution per matching action, terminal, within `SETTLE`, and each action's executions
/// ended as its route says. Every delivery a receiver got names an execution of its action as
/// `webhook-id` and carries that execution's event; an execution's receiver got at least as
/// many deliveries as it has attempts recorded, and any more are duplicates.
async fn check(
    scenario: &str,
    sandbox: &Sandbox,
    tenant: &TestTenant,
    tally: &Tally,
    routes: &[Route<'_>],
) -> usize {
    let tenant_id: TenantId = tenant.id.parse().expect("tenant id");
    assert!(
        tally.accepted.len() >= PHASE,
        "{scenario}: only {} events accepted ({:?}): the load did not flow",
        tally.accepted.len(),
        tally.refused
    );
    let started = Instant::now();
    let settled = tokio::time::timeout(
        SETTLE,
        eventually(
            &format!("{scenario}: every execution to finish"),
            SETTLE * 2,
            || async {
                let snapshot = snapshot(sandbox, tenant_id).await.ok()?;
                unsettled(&snapshot, routes).is_empty().then_some(snapshot)
            },
        ),
    )
    .await;
    let settle_time = started.elapsed();
    let snapshot = match settled {
        Ok(snapshot) => snapshot,
        Err(_) => {
            let snapshot = snapshot(sandbox, tenant_id).await.expect("read the audit");
            let problems = unsettled(&snapshot, routes);
            panic!(
                "{scenario}: not settled {SETTLE:?} after the load ({} problems), first: {:#?}",
                problems.len(),
                &problems[..problems.len().min(20)]
            );
        }
    };
    let lost: Vec<&String> = tally
        .accepted
        .iter()
        .filter(|id| !snapshot.events.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{scenario}: {} events accepted with 2xx were lost, first: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );

    let executions: HashMap<uuid::Uuid, &Execution> =
        snapshot.executions.iter().map(|e| (e.id, e)).collect();
    let mut by_status: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut duplicates = Vec::new();
    let mut deliveries = 0;
    for route in routes {
        let mut received: HashMap<uuid::Uuid, Vec<Received>> = HashMap::new();
        for delivery in route.receiver.received() {
            let webhook_id = delivery.header("webhook-id").to_owned();
            let id: ExecutionId = webhook_id.parse().unwrap_or_else(|_| {
                panic!(
                    "{scenario}: `{webhook_id}` is no execution id ({})",
                    route.name
                )
            });
            let execution = executions.get(&id.as_uuid()).unwrap_or_else(|| {
                panic!(
                    "{scenario}: {} got `{webhook_id}`, no execution",
                    route.name
                )
            });
            assert_eq!(
                execution.action_id, route.action,
                "{scenario}: {} got another action's execution {webhook_id}",
                route.name
            );
            assert_eq!(
                delivery.json()["id"].as_str(),
                Some(execution.event_id.as_str()),
                "{scenario}: {webhook_id} delivered another event",
            );
            received.entry(id.as_uuid()).or_default().push(delivery);
            deliveries += 1;
        }
        for execution in snapshot
            .executions
            .iter()
            .filter(|e| e.action_id == route.action)
        {
            *by_status
                .entry((route.name, execution.status.as_str()))
                .or_default() += 1;
            let id = ExecutionId::from(execution.id);
            let got = received.get(&execution.id).map_or(0, Vec::len);
            assert!(
                got >= execution.attempts as usize,
                "{scenario}: {id} has {} attempts recorded but {} reached {}",
                execution.attempts,
                got,
                route.name
            );
            if got > execution.attempts as usize {
                duplicates.push(format!(
                    "{id} (event {}, {}): {got} deliveries for {} attempts",
                    execution.event_id, route.name, execution.attempts
                ));
            }
            let expected = match route.outcome {
                Outcome::Succeeded => execution.status == "succeeded",
                Outcome::Finished => {
                    execution.status == "succeeded"
                        || (execution.status == "failed"
                            && execution.attempts == execution.max_attempts)
                }
                Outcome::FailedAfter(attempts) => {
                    execution.status == "failed" && execution.attempts == attempts
                }
            };
            assert!(
                expected,
                "{scenario}: {id} of {} should be {:?}: {execution:?}",
                route.name, route.outcome
            );
        }
    }
    eprintln!(
        "{scenario}: {} events accepted, refused {:?}, held back {}; {} stored; executions \
         {by_status:?}; {deliveries} deliveries; {} duplicates; settled {:?} after the load",
        tally.accepted.len(),
        tally.refused,
        tally.held_back,
        snapshot.events.len(),
        duplicates.len(),
        settle_time
    );
    for duplicate in &duplicates {
        eprintln!("{scenario}: duplicate: {duplicate}");
    }
    duplicates.len()
}

// ---------------------------------------------------------------------------------------
// `kill -9` of each service

/// Settings for services run as child processes, as the in-process ones get them.
fn child_settings() -> [(String, String); 3] {
    [
        ("HERALD_SCHEDULER__POLL_INTERVAL_MS", "50"),
        ("HERALD_EXECUTOR__CIRCUIT_SYNC_MS", "100"),
        ("HERALD_EXECUTOR__CIRCUIT_COOLDOWN_MS", "1000"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
}

/// The four services as child processes of a sandbox, so that they can be killed.
struct Cluster {
    sandbox: Sandbox,
    /// The running ingest's base URL.
    api: Arc<Mutex<String>>,
    services: Vec<(ServiceName, ServiceProcess, SocketAddr)>,
}

impl Cluster {
    async fn start() -> Self {
        let mut cluster = Self {
            sandbox: Sandbox::with(SandboxOptions::none()).await,
            api: Arc::new(Mutex::new(String::new())),
            services: Vec::new(),
        };
        for service in [
            ServiceName::Ingest,
            ServiceName::Matcher,
            ServiceName::Executor,
            ServiceName::Scheduler,
        ] {
            cluster.spawn(service).await;
        }
        cluster
    }

    /// Starts one replica of `service` and waits until it is ready.
    async fn spawn(&mut self, service: ServiceName) {
        let ops = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut env = self.sandbox.env();
        env.extend(child_settings());
        env.push(("HERALD_OPS__LISTEN".into(), ops.to_string()));
        let api = (service == ServiceName::Ingest).then(free_port);
        if let Some(port) = api {
            env.push(("HERALD_HTTP__LISTEN".into(), format!("127.0.0.1:{port}")));
        }
        let process = ServiceProcess::spawn(service.binary(), &env);
        let http = self.sandbox.http.clone();
        eventually(
            &format!("{} to be ready", service.binary()),
            Duration::from_secs(30),
            || async {
                http.get(format!("http://{ops}/readyz"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(drop)
            },
        )
        .await;
        if let Some(port) = api {
            let url = format!("http://127.0.0.1:{port}");
            *self.api.lock().unwrap() = url.clone();
            self.sandbox.api = Some(url);
        }
        self.services.push((service, process, ops));
    }

    /// `kill -9` of the replica of `service`.
    async fn kill(&mut self, service: ServiceName) {
        let at = self
            .services
            .iter()
            .position(|(s, _, _)| *s == service)
            .expect("the service runs");
        let (_, mut process, _) = self.services.remove(at);
        process.kill_hard().await;
    }

    /// The ops addresses of the running replicas of `service`.
    fn ops_addrs(&self, service: ServiceName) -> Vec<SocketAddr> {
        self.services
            .iter()
            .filter(|(s, _, _)| *s == service)
            .map(|(_, _, ops)| *ops)
            .collect()
    }
}

/// Events flow; `victim` is killed with `kill -9`; a phase later a replacement starts; once
/// the load has run a phase more, the checker runs.
async fn kill_under_load(victim: ServiceName) {
    let scenario = format!("kill -9 {}", victim.binary());
    let mut cluster = Cluster::start().await;
    let steady = steady_receiver().await;
    let flaky = flaky_receiver().await;
    let tenant = cluster.sandbox.tenant().await;
    let routes = crash_routes(&cluster.sandbox, &tenant, &steady, &flaky).await;
    actions_live(
        &cluster.sandbox,
        &cluster.ops_addrs(ServiceName::Matcher),
        &routes,
    )
    .await;
    let load = Load::start(
        cluster.sandbox.http.clone(),
        cluster.api.clone(),
        tenant.key.clone(),
        tick_events,
    );
    load.run_for(PHASE).await;
    eventually(
        "deliveries to be under way",
        Duration::from_secs(30),
        || async { (steady.count() >= 100 && flaky.count() >= 100).then_some(()) },
    )
    .await;
    cluster.kill(victim).await;
    load.run_for(PHASE).await;
    cluster.spawn(victim).await;
    load.run_for(PHASE).await;
    let tally = load.finish().await;
    check(&scenario, &cluster.sandbox, &tenant, &tally, &routes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_ingest_loses_no_accepted_event() {
    kill_under_load(ServiceName::Ingest).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_matcher_loses_nothing() {
    kill_under_load(ServiceName::Matcher).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_executor_loses_nothing() {
    kill_under_load(ServiceName::Executor).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_scheduler_loses_nothing() {
    kill_under_load(ServiceName::Scheduler).await;
}

// ---------------------------------------------------------------------------------------
// The broker and the database

/// Circuits that react within a test's patience.
fn quick_circuits(config: &mut Config) {
    config.executor.circuit_sync_ms = 100;
    config.executor.circuit_cooldown_ms = 1000;
}

/// Every service in-process on `servers`, two receivers, a tenant and the crash routes; runs
/// `fault` while the load flows and checks once it has run a phase more.
async fn fault_under_load<F, Fut>(scenario: &str, servers: Servers, fault: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let sandbox = Sandbox::on(
        SandboxOptions {
            configure: quick_circuits,
            ..SandboxOptions::default()
        },
        servers,
    )
    .await;
    let steady = steady_receiver().await;
    let flaky = flaky_receiver().await;
    let tenant = sandbox.tenant().await;
    let routes = crash_routes(&sandbox, &tenant, &steady, &flaky).await;
    actions_live(&sandbox, &sandbox.ops_addrs(ServiceName::Matcher), &routes).await;
    let load = Load::start(
        sandbox.http.clone(),
        Arc::new(Mutex::new(sandbox.api_url(""))),
        tenant.key.clone(),
        tick_events,
    );
    load.run_for(PHASE).await;
    let started = Instant::now();
    fault().await;
    eprintln!("{scenario}: the fault took {:?}", started.elapsed());
    load.run_for(PHASE).await;
    let tally = load.finish().await;
    check(scenario, &sandbox, &tenant, &tally, &routes).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_stop_app_and_start_app_under_load() {
    let rabbit = PrivateRabbit::start().await;
    let servers = Servers {
        amqp_url: Some(rabbit.amqp_url()),
        database_url: None,
    };
    fault_under_load("broker stop_app/start_app", servers, || async {
        rabbit.stop_app().await;
        rabbit.start_app().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_kill_9_and_restart_under_load() {
    let mut rabbit = PrivateRabbit::start().await;
    let servers = Servers {
        amqp_url: Some(rabbit.amqp_url()),
        database_url: None,
    };
    let rabbit = &mut rabbit;
    fault_under_load("broker kill -9 and restart", servers, move || async move {
        rabbit.kill_hard().await;
        rabbit.restart().await;
    })
    .await;
}

/// How long the database stays down while the load goes on (a restart alone takes well under
/// a second). Within it, the matcher and the executors return each failing message to its
/// queue after half a second, far from the queues' delivery limit of 20.
const DATABASE_OUTAGE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread")]
async fn database_restart_under_load() {
    let postgres = PrivatePostgres::start().await;
    let servers = Servers {
        amqp_url: None,
        database_url: Some(postgres.admin_url()),
    };
    fault_under_load("database stop -m fast and start", servers, || async {
        postgres.stop_fast().await;
        tokio::time::sleep(DATABASE_OUTAGE).await;
        postgres.start_again().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn database_kill_9_under_load() {
    let postgres = PrivatePostgres::start().await;
    let servers = Servers {
        amqp_url: None,
        database_url: Some(postgres.admin_url()),
    };
    fault_under_load("database kill -9 and start", servers, || async {
        postgres.kill_hard().await;
        tokio::time::sleep(DATABASE_OUTAGE).await;
        postgres.start_again().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// A receiver that hangs

/// Circuits that never open, so that every attempt to the hung receiver is made and times out
/// (circuits.rs covers a dead endpoint's circuit).
fn circuits_never_open(config: &mut Config) {
    config.executor.circuit_consecutive_failures = 1_000_000;
    config.executor.circuit_min_attempts = 1_000_000;
}

/// One event in ten also goes to the hung receiver.
fn some_hang(n: usize) -> &'static str {
    if n.is_multiple_of(10) {
        "fault.hang"
    } else {
        "fault.tick"
    }
}

/// The hung receiver's action: attempts time out after this.
const HUNG_TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_times_out_and_fails_while_healthy_ones_flow() {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: circuits_never_open,
        ..SandboxOptions::default()
    })
    .await;
    let hung = Receiver::start().await;
    hung.fallback(Reply::status(200).after(Duration::from_secs(600)));
    let first = Receiver::start().await;
    let second = steady_receiver().await;
    let tenant = sandbox.tenant().await;
    let both: &[&str] = &["fault.tick", "fault.hang"];
    let healthy = json!({"retry": {"max_attempts": 3, "delays_s": [1]}});
    let routes = vec![
        route(
            &sandbox,
            &tenant,
            "hung",
            &hung,
            &["fault.hang"],
            json!({
                "timeout_ms": HUNG_TIMEOUT.as_millis() as u64,
                "retry": {"max_attempts": 2, "delays_s": [1]},
            }),
            Outcome::FailedAfter(2),
        )
        .await,
        route(
            &sandbox,
            &tenant,
            "healthy",
            &first,
            both,
            healthy.clone(),
            Outcome::Succeeded,
        )
        .await,
        route(
            &sandbox,
            &tenant,
            "healthy-20ms",
            &second,
            both,
            healthy,
            Outcome::Succeeded,
        )
        .await,
    ];
    actions_live(&sandbox, &sandbox.ops_addrs(ServiceName::Matcher), &routes).await;
    let load = Load::start(
        sandbox.http.clone(),
        Arc::new(Mutex::new(sandbox.api_url(""))),
        tenant.key.clone(),
        some_hang,
    );
    load.run_for(3 * PHASE).await;
    let tally = load.finish().await;
    let duplicates = check("a hanging receiver", &sandbox, &tenant, &tally, &routes).await;
    assert_eq!(duplicates, 0, "no fault here repeats a delivery");

    // The healthy receivers were not kept waiting behind the hung one: each execution
    // succeeded at its first attempt, soon after its event was accepted.
    for receiver in [&first, &second] {
        let mut latencies: Vec<Duration> = receiver
            .received()
            .iter()
            .map(|r| {
                let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
                r.at - tally.sent_at[&id]
            })
            .collect();
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100];
        eprintln!(
            "a hanging receiver: healthy latency p50 {:?}, p99 {p99:?}, max {:?}",
            latencies[latencies.len() / 2],
            latencies.last().unwrap()
        );
        assert_eq!(
            receiver.count(),
            tally.accepted.len(),
            "one delivery per event"
        );
        assert!(
            p99 < 4 * HUNG_TIMEOUT,
            "healthy p99 {p99:?}: deliveries waited behind the hung receiver"
        );
    }
    sandbox.stop().await;
}
