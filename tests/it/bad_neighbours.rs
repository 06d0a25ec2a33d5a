//! One bad event must not fail the events batched beside it. Ingest writes many requests'
//! events in one statement, the matcher many messages', the scheduler many delayed jobs', the
//! executor many attempts': a value the database refuses fails only the request or message it
//! came in, with its own precise answer, and every other one is stored and delivered as if it
//! had come alone. (Found with a body nested 100,000 deep: PostgreSQL's "stack depth limit
//! exceeded" failed every event batched with it, across tenants, as `503 retry`.)

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use herald_common::broker::topology::{
    DEAD_CODE_HEADER, DEAD_QUEUE, DELAYED_EXCHANGE, DELAYED_ROUTING_KEY, EVENTS_EXCHANGE,
};
use herald_common::event::{Event, EventId, EventType, RawJson};
use herald_common::ids::{ExecutionId, TenantId};
use herald_common::messages::{DelayedJob, Message, UNSTORABLE};
use herald_common::status::AttemptOutcome;
use herald_common::store::{AttemptRecord, InsertedEvent, Outcome, WriteFailure};
use herald_executor::batcher::{Batcher, CallError};
use herald_tests::receiver::Reply;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox, eventually};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api_input::count;
use crate::support::{WebhookSetup, webhook_action, webhook_setup};

/// JSON nested 100,000 deep: valid, and more than PostgreSQL's parser can take.
fn poison() -> String {
    format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))
}

/// The doors of `POST /v1/events` and `/v1/events/batch`, each a way to send events.
#[derive(Debug, Clone, Copy)]
enum Door {
    Json,
    JsonBatch,
    Structured,
    Binary,
    CloudEventsBatch,
}

const DOORS: [Door; 5] = [
    Door::Json,
    Door::JsonBatch,
    Door::Structured,
    Door::Binary,
    Door::CloudEventsBatch,
];

/// Events a request of `door` carries.
fn events_per_request(door: Door) -> usize {
    match door {
        Door::JsonBatch | Door::CloudEventsBatch => 4,
        _ => 1,
    }
}

/// A request of `door` carrying events `ids`, each with `data` (raw JSON text).
fn request(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    door: Door,
    ids: &[String],
    data: &str,
) -> reqwest::RequestBuilder {
    let herald = |id: &String| format!(r#"{{"id":"{id}","type":"order.paid","data":{data}}}"#);
    let cloudevent = |id: &String| {
        format!(
            r#"{{"specversion":"1.0","id":"{id}","type":"order.paid","source":"/shop","data":{data}}}"#
        )
    };
    let array = |items: Vec<String>| format!("[{}]", items.join(","));
    let post = |path: &str, content_type: &str, body: String| {
        sandbox
            .http_request(Method::POST, path, &tenant.key)
            .header("content-type", content_type)
            .body(body)
    };
    match door {
        Door::Json => post("/v1/events", "application/json", herald(&ids[0])),
        Door::JsonBatch => post(
            "/v1/events/batch",
            "application/json",
            array(ids.iter().map(herald).collect()),
        ),
        Door::Structured => post(
            "/v1/events",
            "application/cloudevents+json",
            cloudevent(&ids[0]),
        ),
        Door::Binary => post("/v1/events", "application/json", data.to_owned())
            .header("ce-specversion", "1.0")
            .header("ce-id", ids[0].as_str())
            .header("ce-type", "order.paid")
            .header("ce-source", "/shop"),
        Door::CloudEventsBatch => post(
            "/v1/events",
            "application/cloudevents-batch+json",
            array(ids.iter().map(cloudevent).collect()),
        ),
    }
}

/// Webhooks the receiver got, by event id.
fn webhooks_by_event(receiver: &Receiver) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for webhook in receiver.received() {
        let id = webhook.json()["id"].as_str().unwrap_or_default().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Waits until each of `ids` has its webhook, then checks that each came once and nothing else
/// came (a sentinel sent last over HTTP has arrived too, so a stray copy had its chance).
async fn assert_each_delivered_once(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    receiver: &Receiver,
    ids: &[String],
) {
    eventually(
        &format!("{} webhooks", ids.len()),
        Duration::from_secs(60),
        || async {
            let seen = webhooks_by_event(receiver);
            ids.iter().all(|id| seen.contains_key(id)).then_some(())
        },
    )
    .await;
    let sentinel = sandbox
        .event(tenant, json!({"type": "order.paid", "data": {}}))
        .await;
    eventually(
        "the sentinel's webhook",
        Duration::from_secs(20),
        || async {
            webhooks_by_event(receiver)
                .contains_key(&sentinel)
                .then_some(())
        },
    )
    .await;
    let mut seen = webhooks_by_event(receiver);
    seen.remove(&sentinel);
    for id in ids {
        assert_eq!(seen.remove(id), Some(1), "{id} delivered once");
    }
    assert!(seen.is_empty(), "nothing else delivered: {seen:?}");
}

/// Two tenants, each with a webhook action to one receiver for `order.paid`.
async fn two_tenants() -> (Sandbox, Receiver, TestTenant, TestTenant) {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let good = sandbox.tenant().await;
    let bad = sandbox.tenant().await;
    for tenant in [&good, &bad] {
        sandbox
            .action(
                tenant,
                webhook_action("hook", "order.paid", &receiver.url("/hook"), json!({})),
            )
            .await;
    }
    (sandbox, receiver, good, bad)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_request_is_refused_alone_while_good_ones_flow_at_every_http_door() {
    let (sandbox, receiver, good, bad) = two_tenants().await;
    let poison = poison();
    // 12 clients of one tenant send ordinary events by every door while 4 clients of another
    // send the poison by every door, all at once, as in the report.
    let good_clients = (0..12).map(|client| {
        let (sandbox, tenant) = (&sandbox, &good);
        async move {
            let mut sent = Vec::new();
            for n in 0..10 {
                let door = DOORS[(client + n) % DOORS.len()];
                let ids: Vec<String> = (0..events_per_request(door))
                    .map(|k| format!("good-{client}-{n}-{k}"))
                    .collect();
                let data = format!(r#"{{"client":{client},"n":{n}}}"#);
                let response = request(sandbox, tenant, door, &ids, &data)
                    .send()
                    .await
                    .expect("ingest answers");
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                assert_eq!(status, 202, "{door:?} {ids:?}: {body}");
                sent.extend(ids);
            }
            sent
        }
    });
    let poison_clients = (0..4).map(|client| {
        let (sandbox, tenant, poison) = (&sandbox, &bad, &poison);
        async move {
            for n in 0..10 {
                let door = DOORS[(client + n) % DOORS.len()];
                let ids: Vec<String> = (0..events_per_request(door))
                    .map(|k| format!("bad-{client}-{n}-{k}"))
                    .collect();
                let (status, answer) =
                    Sandbox::answer(request(sandbox, tenant, door, &ids, poison)).await;
                assert_eq!(
                    (status, answer["error"]["code"].as_str()),
                    (422, Some("json_too_deep")),
                    "{door:?}: {answer}"
                );
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("data"), "names the data: {message}");
            }
        }
    });
    let (sent, ()) = tokio::join!(join_all(good_clients), async {
        join_all(poison_clients).await;
    });
    let sent: Vec<String> = sent.into_iter().flatten().collect();

    assert_each_delivered_once(&sandbox, &good, &receiver, &sent).await;
    let stored_bad: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(bad.id.parse::<TenantId>().expect("a tenant id"))
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count");
    assert_eq!(stored_bad, 0, "none of the poison is stored");
    sandbox.stop().await;
}

/// Publishes a JSON or MessagePack body to `herald.events` as an outside program would.
async fn publish(channel: &Channel, body: Vec<u8>, content_type: &str, id: &str) {
    channel
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "order.paid".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_content_type(content_type.into())
                .with_message_id(id.into())
                .with_delivery_mode(2),
        )
        .await
        .expect("publish");
}

fn dead_code(headers: &Option<FieldTable>) -> String {
    match headers
        .as_ref()
        .and_then(|h| h.inner().get(DEAD_CODE_HEADER))
    {
        Some(AMQPValue::LongString(code)) => code.to_string(),
        other => panic!("no dead-letter code: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poisoned_message_on_the_broker_is_dead_lettered_and_its_neighbours_delivered() {
    let (sandbox, receiver, good, bad) = two_tenants().await;
    let channel = sandbox.broker().await;
    let poison = poison();
    // Past Herald's bound of 64, within what serde_json builds as a value here.
    let deep_msgpack: Value = serde_json::from_str(&format!(
        r#"{{"tenant_id":"{}","type":"order.paid","data":{}{}}}"#,
        bad.id,
        "[".repeat(100),
        "]".repeat(100)
    ))
    .expect("JSON");
    let mut sent = Vec::new();
    let mut poisoned = 0;
    for n in 0..400 {
        let id = format!("broker-{n}");
        let body = json!({"tenant_id": good.id, "type": "order.paid", "data": {"n": n}});
        publish(
            &channel,
            body.to_string().into_bytes(),
            "application/json",
            &id,
        )
        .await;
        sent.push(id);
        if n % 20 == 0 {
            let id = format!("poison-{n}");
            let body = format!(
                r#"{{"tenant_id":"{}","type":"order.paid","data":{poison}}}"#,
                bad.id
            );
            publish(&channel, body.into_bytes(), "application/json", &id).await;
            let packed = rmp_serde::to_vec_named(&deep_msgpack).expect("msgpack");
            publish(&channel, packed, "application/msgpack", &format!("{id}-mp")).await;
            poisoned += 2;
        }
    }

    for _ in 0..poisoned {
        let message = sandbox
            .next_message(&channel, DEAD_QUEUE, Duration::from_secs(30))
            .await;
        assert_eq!(
            dead_code(message.delivery.properties.headers()),
            "json_too_deep"
        );
    }
    assert_each_delivered_once(&sandbox, &good, &receiver, &sent).await;
    assert_eq!(
        count(&sandbox, "events").await,
        400 + 1,
        "the good ones and the sentinel"
    );
    sandbox.stop().await;
}

/// A tenant made straight in the database, for tests that run no ingest.
async fn tenant_row(sandbox: &Sandbox) -> TenantId {
    let tenant = TenantId::new();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'direct')")
        .bind(tenant)
        .execute(sandbox.store.pool())
        .await
        .expect("a tenant");
    tenant
}

/// An event as it would reach the store, with `data` as given (the door's checks bypassed, as
/// for a value some future door would let through).
fn stored_event(tenant: TenantId, id: &str, data: String) -> (Event, Option<String>) {
    let event = Event {
        tenant_id: tenant,
        id: EventId::parse(id).expect("an id"),
        event_type: EventType::parse("order.paid").expect("a type"),
        source: None,
        time: None,
        received_at: Utc::now(),
        data: RawJson::from_validated(data),
        metadata: Default::default(),
        trace: None,
    };
    (event, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_the_database_refuses_fail_only_their_own_request() {
    let sandbox = Sandbox::with(herald_tests::sandbox::SandboxOptions::none()).await;
    let tenant = tenant_row(&sandbox).await;
    let one = |id: &str| stored_event(tenant, id, "{}".into());
    let requests: Vec<Vec<(Event, Option<String>)>> = vec![
        vec![one("a-1"), one("a-2")],
        vec![one("b-1"), stored_event(tenant, "b-2", poison())],
        vec![one("c-1")],
        vec![stored_event(tenant, "d-1", poison())],
        vec![one("e-1"), one("e-2"), one("a-1")],
    ];
    let groups: Vec<&[(Event, Option<String>)]> = requests.iter().map(Vec::as_slice).collect();
    let results = sandbox.store.insert_event_groups(&groups).await;

    let refused = |i: usize| match &results[i] {
        Err(WriteFailure::Refused(error)) => error.to_string(),
        other => panic!("request {i} should be refused: {other:?}"),
    };
    assert!(refused(1).contains("stack depth"), "{}", refused(1));
    assert!(refused(3).contains("stack depth"), "{}", refused(3));
    let new = InsertedEvent::New;
    assert_eq!(
        results[0].as_ref().ok(),
        Some(&vec![new.clone(), new.clone()])
    );
    assert_eq!(results[2].as_ref().ok(), Some(&vec![new.clone()]));
    assert_eq!(
        results[4].as_ref().ok(),
        Some(&vec![
            new.clone(),
            new,
            InsertedEvent::Duplicate(EventId::parse("a-1").expect("id"))
        ]),
        "written after the first request, as if alone"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(sandbox.store.pool())
        .await
        .expect("ids");
    assert_eq!(
        stored,
        ["a-1", "a-2", "c-1", "e-1", "e-2"],
        "a request is all or none"
    );
    sandbox.stop().await;
}

fn attempt(tenant: TenantId, headers: Value) -> (AttemptRecord, Outcome) {
    let record = AttemptRecord {
        execution_id: ExecutionId::new(),
        tenant_id: tenant,
        attempt: 1,
        started_at: Utc::now(),
        duration_ms: 3,
        request_url: "https://example.com/hook".into(),
        response_status: Some(200),
        response_headers: Some(headers),
        response_body: Some("ok\0body".into()),
        outcome: AttemptOutcome::Succeeded,
        error_kind: None,
        error_message: None,
    };
    (record, Outcome::Succeeded)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_the_database_refuses_fails_alone_in_its_batch() {
    let sandbox = Sandbox::with(herald_tests::sandbox::SandboxOptions::none()).await;
    let tenant = tenant_row(&sandbox).await;
    let store = sandbox.store.clone();
    // The executor's own batching of records.
    let records = Batcher::spawn(256, move |records| {
        let store = store.clone();
        Box::pin(async move { Ok(store.record_attempts(records).await?) })
    });
    // jsonb cannot hold U+0000 (a response header could not carry one; the store is shown a
    // record that does).
    let calls = (0..40).map(|n| {
        let headers = if n == 17 {
            json!({"server": "bad\u{0}"})
        } else {
            json!({"server": "fine"})
        };
        let records = records.clone();
        async move { records.call(attempt(tenant, headers)).await }
    });
    let answers = join_all(calls).await;
    for (n, answer) in answers.iter().enumerate() {
        match (n, answer) {
            (17, Err(CallError::Refused(_))) => {}
            (17, other) => panic!("the bad record should be refused: {other:?}"),
            (_, Ok(_)) => {}
            (_, other) => panic!("record {n} should be stored: {other:?}"),
        }
    }
    assert_eq!(count(&sandbox, "attempts").await, 39);
    // A NUL in a response body (receivers send them) is stored as U+FFFD.
    let body: String = sqlx::query_scalar("SELECT response_body FROM attempts LIMIT 1")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("a body");
    assert_eq!(body, "ok\u{FFFD}body");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_holding_nul_bytes_is_recorded_and_sent_once() {
    let WebhookSetup {
        sandbox,
        receiver,
        tenant,
    } = webhook_setup("order.paid", json!({})).await;
    receiver.script([Reply::status(200).with_body(&b"ok\0not \xff utf-8"[..])]);
    let id = sandbox
        .event(&tenant, json!({"type": "order.paid", "data": {}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &id, 1, Duration::from_secs(20))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().expect("an id"))
        .await;
    let attempts = execution["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{execution}");
    assert_eq!(attempts[0]["response_body"], "ok\u{FFFD}not \u{FFFD} utf-8");
    assert_each_delivered_once(&sandbox, &tenant, &receiver, &[id]).await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_job_the_database_refuses_is_dead_lettered_and_the_others_kept() {
    let sandbox = Sandbox::with(herald_tests::sandbox::SandboxOptions {
        ingest: false,
        matcher: false,
        executor: false,
        ..Default::default()
    })
    .await;
    let channel = sandbox.broker().await;
    let job = |id: &str, due_at: DateTime<Utc>| DelayedJob {
        id: id.to_owned(),
        due_at,
        exchange: "herald.nowhere".into(),
        routing_key: "nowhere".into(),
        message_type: "herald.nothing.v1".into(),
        body: Vec::new(),
        headers: Default::default(),
    };
    // Far enough ahead not to be released while the test looks.
    let later = Utc::now() + chrono::Duration::days(1);
    let mut jobs: Vec<DelayedJob> = (0..30).map(|n| job(&format!("job-{n}"), later)).collect();
    // Before 4713 BC: a time chrono holds and PostgreSQL's timestamptz does not.
    jobs.insert(11, job("too-early", DateTime::<Utc>::MIN_UTC));
    for job in &jobs {
        channel
            .basic_publish(
                DELAYED_EXCHANGE.into(),
                DELAYED_ROUTING_KEY.into(),
                BasicPublishOptions::default(),
                &job.encode(),
                BasicProperties::default()
                    .with_type(DelayedJob::type_name().into())
                    .with_delivery_mode(2),
            )
            .await
            .expect("publish");
    }
    let message = sandbox
        .next_message(&channel, DEAD_QUEUE, Duration::from_secs(20))
        .await;
    assert_eq!(dead_code(message.delivery.properties.headers()), UNSTORABLE);
    eventually("the other jobs stored", Duration::from_secs(20), || async {
        (count(&sandbox, "delayed_jobs").await == 30).then_some(())
    })
    .await;
    sandbox.stop().await;
}
