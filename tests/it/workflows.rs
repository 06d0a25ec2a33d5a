//! Workflow actions as a user runs them: steps run in the order their dependencies give, each
//! reading the outputs of the steps before it; a false `if` skips a step and what depends on
//! it; a step that fails for good stops what follows and runs `on_failure` once; and a
//! workflow that could never run is refused when saved, naming the step.

use std::time::Duration;

use herald_tests::process::ServiceProcess;
use herald_tests::sandbox::{Servers, TestTenant};
use herald_tests::servers::PrivateRabbit;
use herald_tests::{Receiver, Reply, Sandbox, SandboxOptions, eventually};
use serde_json::{Value, json};

fn workflow_action(name: &str, handler: Value) -> Value {
    json!({"name": name, "event_types": ["user.created"], "handler": handler})
}

/// Sends one event and returns its only execution once it has ended, with its steps.
async fn run_one(sandbox: &Sandbox, tenant: &TestTenant, data: Value) -> Value {
    let event = sandbox
        .event(tenant, json!({"type": "user.created", "data": data}))
        .await;
    let executions = sandbox
        .terminal_executions(tenant, &event, 1, Duration::from_secs(30))
        .await;
    let id = executions[0]["id"].as_str().expect("id");
    sandbox.execution(tenant, id).await
}

/// The status of the run's step `id`, if the run has that step yet (its steps appear once its
/// first job has been taken).
fn step_status<'a>(execution: &'a Value, id: &str) -> Option<&'a str> {
    execution["steps"]
        .as_array()?
        .iter()
        .find(|s| s["step"] == id)?["status"]
        .as_str()
}

/// The run's step `id`.
fn step<'a>(execution: &'a Value, id: &str) -> &'a Value {
    execution["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {execution}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn steps_run_in_dependency_order_reading_the_outputs_before_them() {
    let sandbox = Sandbox::start().await;
    let crm = Receiver::start().await;
    crm.fallback(
        Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body(r#"{"plan": "premium", "email": "ann@example.org"}"#),
    );
    let hooks = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "onboard",
                json!({"type": "workflow", "steps": [
                    {"id": "lookup", "handler": {"type": "http", "method": "GET",
                        "url": crm.url("/users/{{ event.data.user_id }}")}},
                    {"id": "score", "depends_on": ["lookup"],
                     "set": {"vip": "{{ steps.lookup.output.body.plan in ['premium', 'enterprise'] }}",
                             "plan": "{{ steps.lookup.output.body.plan }}"}},
                    {"id": "notify", "depends_on": ["score"], "if": "{{ steps.score.output.vip }}",
                     "handler": {"type": "http", "url": hooks.url("/vip"),
                        "body": {"email": "{{ steps.lookup.output.body.email }}",
                                 "vip": "{{ steps.score.output.vip }}",
                                 "status": "{{ steps.lookup.output.status }}"}}},
                    {"id": "free_offer", "depends_on": ["lookup"],
                     "if": "{{ steps.lookup.output.body.plan == 'free' }}",
                     "handler": {"type": "http", "url": hooks.url("/free")}},
                    {"id": "after_offer", "depends_on": ["free_offer"], "set": {"done": true}}
                ]}),
            ),
        )
        .await;

    let execution = run_one(&sandbox, &tenant, json!({"user_id": "u1"})).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(step(&execution, "lookup")["status"], "succeeded");
    assert_eq!(step(&execution, "lookup")["output"]["status"], 200);
    assert_eq!(
        step(&execution, "score")["output"],
        json!({"vip": true, "plan": "premium"})
    );
    assert_eq!(step(&execution, "notify")["status"], "succeeded");
    assert_eq!(
        step(&execution, "notify")["history"][0]["response_status"],
        200
    );
    assert_eq!(step(&execution, "free_offer")["status"], "skipped");
    assert_eq!(
        step(&execution, "after_offer")["status"],
        "skipped",
        "a step after a skipped one is skipped"
    );

    let looked_up = crm.received();
    assert_eq!(looked_up.len(), 1);
    assert_eq!(looked_up[0].path, "/users/u1");
    let sent = hooks.received();
    assert_eq!(sent.len(), 1, "only the step whose if holds sends");
    assert_eq!(sent[0].path, "/vip");
    assert_eq!(
        sent[0].json(),
        json!({"email": "ann@example.org", "vip": true, "status": 200})
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_step_stops_what_follows_and_runs_on_failure_once() {
    let sandbox = Sandbox::start().await;
    let failing = Receiver::start().await;
    failing.fallback(Reply::status(503));
    let alerts = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "charge",
                json!({"type": "workflow",
                    "steps": [
                        {"id": "charge", "handler": {"type": "http", "url": failing.url("/charge")},
                         "retry": {"max_attempts": 2, "delays_s": [1]}},
                        {"id": "receipt", "depends_on": ["charge"],
                         "handler": {"type": "http", "url": alerts.url("/receipt")}}
                    ],
                    "on_failure": {"type": "http", "url": alerts.url("/alert"),
                        "body": {"step": "{{ error.step }}", "message": "{{ error.message }}"}}}),
            ),
        )
        .await;

    let execution = run_one(&sandbox, &tenant, json!({"user_id": "u2"})).await;
    assert_eq!(execution["status"], "failed", "{execution}");
    assert!(
        execution["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("charge")),
        "{execution}"
    );
    let charge = step(&execution, "charge");
    assert_eq!(charge["status"], "failed");
    assert_eq!(charge["attempts"], 2, "the step's own retry policy");
    assert_eq!(charge["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(step(&execution, "receipt")["status"], "cancelled");
    assert_eq!(failing.count(), 2);

    let alerted = alerts.received();
    assert_eq!(alerted.len(), 1, "on_failure runs once; receipt never");
    assert_eq!(alerted[0].path, "/alert");
    assert_eq!(alerted[0].json()["step"], "charge");
    assert_eq!(alerted[0].json()["message"], "HTTP 503");

    // Retried once the destination is back: only what did not succeed runs again.
    failing.fallback(Reply::status(200));
    let id = execution["id"].as_str().unwrap();
    let (status, _) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/v1/executions/{id}/retry"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let event = execution["event_id"].as_str().unwrap().to_owned();
    sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    let retried = sandbox.execution(&tenant, id).await;
    assert_eq!(retried["status"], "succeeded", "{retried}");
    assert_eq!(step(&retried, "charge")["attempts"], 3);
    assert_eq!(step(&retried, "receipt")["status"], "succeeded");
    assert_eq!(failing.count(), 3);
    let paths: Vec<String> = alerts.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/alert", "/receipt"]);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_that_could_never_run_is_refused_naming_the_step() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let log = json!({"type": "log"});
    let steps = |n: usize| -> Value {
        (0..n)
            .map(|i| json!({"id": format!("s{i}"), "handler": log}))
            .collect()
    };
    let cases = [
        (json!([]), "handler.steps"),
        (steps(65), "handler.steps"),
        // Past ingest.max_workflow_steps (32 by default).
        (steps(33), "handler.steps"),
        (
            json!([{"id": "a", "handler": log}, {"id": "a", "handler": log}]),
            "handler.steps[1].id",
        ),
        (
            json!([{"id": "Bad-Id", "handler": log}]),
            "handler.steps[0].id",
        ),
        (
            json!([{"id": "a", "depends_on": ["nope"], "handler": log}]),
            "handler.steps[0].depends_on",
        ),
        (
            json!([{"id": "a", "depends_on": ["b"], "handler": log},
                   {"id": "b", "depends_on": ["a"], "handler": log}]),
            "handler.steps[0].depends_on",
        ),
        (
            json!([{"id": "a", "handler": log},
                   {"id": "b", "set": {"x": "{{ steps.c.output }}"}},
                   {"id": "c", "depends_on": ["a"], "handler": log}]),
            "handler.steps[1]",
        ),
        (
            json!([{"id": "a", "handler": {"type": "http", "url": "https://api.example.com/{{ steps.a.output.body }}"}}]),
            "handler.steps[0]",
        ),
        (
            json!([{"id": "a", "handler": {"type": "http", "url": "https://api.example.com/x",
                    "body": {"x": "{% if %}"}}}]),
            "handler.steps[0].handler.body",
        ),
        (
            json!([{"id": "a", "handler": {"type": "workflow", "steps": []}}]),
            "handler.steps[0].handler.type",
        ),
        (json!([{"id": "a"}]), "handler.steps[0]"),
        (
            json!([{"id": "a", "handler": log, "set": {"x": 1}}]),
            "handler.steps[0].set",
        ),
        (
            json!([{"id": "a", "handler": log, "delay_s": -1}]),
            "handler.steps[0].delay_s",
        ),
    ];
    for (steps, field) in cases {
        let handler = json!({"type": "workflow", "steps": steps});
        let (status, error) = sandbox
            .try_action(&tenant, workflow_action("refused", handler.clone()))
            .await;
        assert_eq!(status, 422, "{handler}: {error}");
        assert_eq!(error["error"]["code"], "invalid_action", "{handler}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let (status, listed) = sandbox
        .call(reqwest::Method::GET, "/v1/actions", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"], json!([]), "nothing half-stored");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_executor_is_killed_mid_step_resumes_and_runs_no_succeeded_step_twice() {
    let sandbox = Sandbox::with(SandboxOptions {
        executor: false,
        ..Default::default()
    })
    .await;
    let first_hop = Receiver::start().await;
    // The first request hangs, so the executor is surely mid-step when it dies.
    first_hop.script([Reply::status(200).after(Duration::from_secs(60))]);
    let second_hop = Receiver::start().await;
    let setup = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "chain",
                json!({"type": "workflow", "steps": [
                    {"id": "setup", "handler": {"type": "webhook", "url": setup.url("/")}},
                    {"id": "slow", "depends_on": ["setup"],
                     "handler": {"type": "webhook", "url": first_hop.url("/")}},
                    {"id": "last", "depends_on": ["slow"],
                     "handler": {"type": "webhook", "url": second_hop.url("/")}}
                ]}),
            ),
        )
        .await;

    let mut first = ServiceProcess::spawn("herald-executor", &sandbox.env());
    let event = sandbox
        .event(&tenant, json!({"type": "user.created", "data": {}}))
        .await;
    eventually(
        "the slow step to be under way",
        Duration::from_secs(30),
        || async { (first_hop.count() == 1).then_some(()) },
    )
    .await;
    first.kill_hard().await;

    let _second = ServiceProcess::spawn("herald-executor", &sandbox.env());
    let executions = sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    assert_eq!(executions[0]["status"], "succeeded", "{executions:?}");
    assert_eq!(setup.count(), 1, "a succeeded step is not run again");
    assert_eq!(second_hop.count(), 1);
    let slow = first_hop.received();
    assert_eq!(slow.len(), 2, "the step in flight is made again");
    let id = slow[0].header("webhook-id");
    assert_eq!(id, slow[1].header("webhook-id"), "with the same id");
    assert_ne!(
        id,
        setup.received()[0].header("webhook-id"),
        "each step has its own id"
    );
    assert!(id.ends_with("_slow"), "{id}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_step_survives_its_scheduler_being_killed() {
    let sandbox = Sandbox::with(SandboxOptions {
        scheduler: false,
        ..Default::default()
    })
    .await;
    let before = Receiver::start().await;
    let after = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "later",
                json!({"type": "workflow", "steps": [
                    {"id": "now", "handler": {"type": "webhook", "url": before.url("/")}},
                    {"id": "later", "depends_on": ["now"], "delay_s": 3,
                     "handler": {"type": "webhook", "url": after.url("/")}}
                ]}),
            ),
        )
        .await;
    let mut first = ServiceProcess::spawn("herald-scheduler", &sandbox.env());
    let event = sandbox
        .event(&tenant, json!({"type": "user.created", "data": {}}))
        .await;
    let execution = eventually(
        "the delay step to wait in the scheduler",
        Duration::from_secs(30),
        || async {
            let view = sandbox.event_view(&tenant, &event).await;
            let id = view["executions"][0]["id"].as_str()?.to_owned();
            let run = sandbox.execution(&tenant, &id).await;
            (before.count() == 1 && step_status(&run, "later") == Some("queued")).then_some(id)
        },
    )
    .await;
    // The hand-over is confirmed before the step is recorded as queued: give the scheduler
    // a moment to have stored it, then kill it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.kill_hard().await;
    let _second = ServiceProcess::spawn("herald-scheduler", &sandbox.env());
    sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    let run = sandbox.execution(&tenant, &execution).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(before.count(), 1);
    assert_eq!(
        after.count(),
        1,
        "the delayed step ran once, after its delay"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_flight_through_a_broker_kill_9_all_end_each_step_under_its_own_id() {
    let mut rabbit = PrivateRabbit::start().await;
    let servers = Servers {
        amqp_url: Some(rabbit.amqp_url()),
        database_url: None,
    };
    let sandbox = Sandbox::on(SandboxOptions::default(), servers).await;
    let hops: Vec<Receiver> =
        futures_util::future::join_all((0..3).map(|_| Receiver::start())).await;
    for hop in &hops {
        hop.fallback(Reply::status(200).after(Duration::from_millis(200)));
    }
    let tenant = sandbox.tenant().await;
    let steps: Vec<Value> = hops
        .iter()
        .enumerate()
        .map(|(i, hop)| {
            let mut step = json!({"id": format!("s{i}"),
                "handler": {"type": "webhook", "url": hop.url("/")},
                "retry": {"max_attempts": 5, "delays_s": [1]}});
            if i > 0 {
                step["depends_on"] = json!([format!("s{}", i - 1)]);
            }
            step
        })
        .collect();
    sandbox
        .action(
            &tenant,
            workflow_action("three", json!({"type": "workflow", "steps": steps})),
        )
        .await;
    const RUNS: usize = 20;
    let mut events = Vec::with_capacity(RUNS);
    for n in 0..RUNS {
        events.push(
            sandbox
                .event(&tenant, json!({"type": "user.created", "data": {"n": n}}))
                .await,
        );
    }
    eventually("steps to be in flight", Duration::from_secs(30), || async {
        (hops[0].count() > 0).then_some(())
    })
    .await;
    rabbit.kill_hard().await;
    rabbit.restart().await;
    for event in &events {
        let executions = sandbox
            .terminal_executions(&tenant, event, 1, Duration::from_secs(90))
            .await;
        assert_eq!(executions[0]["status"], "succeeded", "{executions:?}");
    }
    for (i, hop) in hops.iter().enumerate() {
        let ids: Vec<String> = hop
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), RUNS, "step s{i} reached every run");
        assert!(
            ids.iter().all(|id| id.ends_with(&format!("_s{i}"))),
            "each step's deliveries carry its own id"
        );
        // A step delivered again only because the broker redelivered it mid-request.
        eprintln!("step s{i}: {} deliveries for {RUNS} runs", ids.len());
    }
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_walks_the_steps_with_sample_outputs_and_sends_nothing() {
    let sandbox = Sandbox::start().await;
    let crm = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let created = sandbox
        .action(
            &tenant,
            workflow_action(
                "walk",
                json!({"type": "workflow", "steps": [
                    {"id": "lookup", "handler": {"type": "http", "method": "GET",
                        "url": crm.url("/users/{{ event.data.user_id }}")}},
                    {"id": "score", "depends_on": ["lookup"],
                     "set": {"vip": "{{ steps.lookup.output.body.plan == 'premium' }}"}},
                    {"id": "notify", "depends_on": ["score"], "if": "{{ steps.score.output.vip }}",
                     "handler": {"type": "http", "url": crm.url("/vip"),
                        "body": {"email": "{{ steps.lookup.output.body.email }}"}}},
                    {"id": "free", "depends_on": ["score"], "if": "{{ not steps.score.output.vip }}",
                     "handler": {"type": "http", "url": crm.url("/free")}}
                ]}),
            ),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let (status, walked) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/v1/actions/{id}/test"),
            Some(&tenant.key),
            Some(json!({
                "event": {"type": "user.created", "data": {"user_id": "u7"}},
                "outputs": {"lookup": {"status": 200,
                    "body": {"plan": "premium", "email": "vip@example.org"}}}})),
        )
        .await;
    assert_eq!(status, 200, "{walked}");
    let steps = walked["rendered"]["workflow"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{walked}"));
    let by_id = |id: &str| steps.iter().find(|s| s["step"] == id).unwrap();
    assert_eq!(by_id("lookup")["would"], "run");
    assert_eq!(
        by_id("lookup")["rendered"]["request"]["url"],
        crm.url("/users/u7")
    );
    assert_eq!(by_id("score")["output"], json!({"vip": true}));
    assert_eq!(by_id("notify")["if"], true);
    let body = by_id("notify")["rendered"]["request"]["body"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(body).ok(),
        Some(json!({"email": "vip@example.org"}))
    );
    assert_eq!(by_id("free")["would"], "skip");
    assert_eq!(crm.count(), 0, "a dry run sends nothing");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_waits_until_the_time_its_at_renders() {
    let sandbox = Sandbox::start().await;
    let reminder = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "remind",
                json!({"type": "workflow", "steps": [
                    {"id": "remind", "at": "{{ event.data.remind_at }}",
                     "handler": {"type": "webhook", "url": reminder.url("/")}}
                ]}),
            ),
        )
        .await;
    let remind_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let sent = std::time::Instant::now();
    let execution = run_one(
        &sandbox,
        &tenant,
        json!({"remind_at": remind_at.to_rfc3339()}),
    )
    .await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(reminder.count(), 1);
    assert!(
        reminder.received()[0].at >= sent + Duration::from_millis(1500),
        "sent before its time"
    );
    let (status, refused) = sandbox
        .try_action(
            &tenant,
            workflow_action(
                "both",
                json!({"type": "workflow", "steps": [
                    {"id": "a", "at": "{{ event.time }}", "delay_s": 5}]}),
            ),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("handler.steps[0].at"),
        "{refused}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_run_starts_nothing_new() {
    let sandbox = Sandbox::start().await;
    let first = Receiver::start().await;
    let later = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            workflow_action(
                "cancel-me",
                json!({"type": "workflow", "steps": [
                    {"id": "first", "handler": {"type": "webhook", "url": first.url("/")}},
                    {"id": "later", "depends_on": ["first"], "delay_s": 2,
                     "handler": {"type": "webhook", "url": later.url("/")}}
                ]}),
            ),
        )
        .await;
    let event = sandbox
        .event(&tenant, json!({"type": "user.created", "data": {}}))
        .await;
    let id = eventually(
        "the delay step to wait",
        Duration::from_secs(30),
        || async {
            let view = sandbox.event_view(&tenant, &event).await;
            let id = view["executions"][0]["id"].as_str()?.to_owned();
            let run = sandbox.execution(&tenant, &id).await;
            (step_status(&run, "later") == Some("queued")).then_some(id)
        },
    )
    .await;
    let (status, cancelled) = sandbox
        .call(
            reqwest::Method::POST,
            &format!("/v1/executions/{id}/cancel"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let run = sandbox.execution(&tenant, &id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(first.count(), 1);
    assert_eq!(later.count(), 0, "the step after the cancel never ran");
    sandbox.stop().await;
}
