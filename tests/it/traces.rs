//! One trace per event: from ingest (continuing the caller's `traceparent`) through the
//! matcher, each executor attempt with its outgoing request, the scheduler's release of the
//! retry, and the next attempt, with the receiver seeing the request span as parent; and an
//! event published straight to the broker continuing its AMQP `traceparent` header; a workflow
//! run as one trace, a span per step. Spans
//! are captured with OpenTelemetry's in-memory exporter (each test runs in its own process,
//! so the global tracer provider is this test's).

use std::time::Duration;

use herald_common::broker::string_headers;
use herald_common::broker::topology::EVENTS_EXCHANGE;
use herald_common::trace::{TRACEPARENT, TraceParent};
use herald_tests::{Reply, eventually};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use opentelemetry::trace::SpanId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest::Method;
use serde_json::json;

use crate::support::webhook_setup;

fn span_id(span: &SpanData) -> SpanId {
    span.span_context.span_id()
}

fn attempt_of(span: &SpanData) -> Option<i64> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "herald.attempt")
        .and_then(|kv| match &kv.value {
            opentelemetry::Value::I64(n) => Some(*n),
            _ => None,
        })
}

/// Captures every span of this test process in memory.
fn capture_spans() -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    (exporter, provider)
}

/// The finished spans of `trace`.
fn spans_of(exporter: &InMemorySpanExporter, trace: &TraceParent) -> Vec<SpanData> {
    exporter
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| u128::from_be_bytes(s.span_context.trace_id().to_bytes()) == trace.trace_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_event_is_one_trace_from_ingest_through_a_retry_to_the_receiver() {
    let (exporter, provider) = capture_spans();
    let setup = webhook_setup("order.paid", json!({"max_attempts": 2, "delays_s": [1]})).await;
    setup.receiver.script([Reply::status(503)]);

    let caller = TraceParent::root();
    let response = setup
        .sandbox
        .http_request(Method::POST, "/v1/events", &setup.tenant.key)
        .header("traceparent", caller.to_string())
        .json(&json!({"type": "order.paid", "data": {"n": 1}}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status(), 202);
    eventually("two attempts", Duration::from_secs(30), || async {
        (setup.receiver.count() == 2).then_some(())
    })
    .await;

    // The last spans end a moment after the second request was answered.
    let spans = eventually("the trace's spans", Duration::from_secs(10), || async {
        let _ = provider.force_flush();
        let spans = spans_of(&exporter, &caller);
        let named = |name: &str| spans.iter().filter(|s| s.name == name).count();
        (named("herald.attempt") == 2
            && named("herald.webhook") == 2
            && named("herald.release") == 1)
            .then_some(spans)
    })
    .await;
    let one = |name: &str| -> &SpanData {
        let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]
    };
    let ingest = one("herald.ingest");
    assert_eq!(
        ingest.parent_span_id,
        SpanId::from(caller.span_id),
        "continues the caller"
    );
    let matched = one("herald.match");
    assert_eq!(matched.parent_span_id, span_id(ingest));
    let attempts: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "herald.attempt")
        .collect();
    let first = attempts
        .iter()
        .find(|s| attempt_of(s) == Some(1))
        .expect("attempt 1");
    let second = attempts
        .iter()
        .find(|s| attempt_of(s) == Some(2))
        .expect("attempt 2");
    assert_eq!(first.parent_span_id, span_id(matched));
    let release = one("herald.release");
    assert_eq!(
        release.parent_span_id,
        span_id(first),
        "the retry's release"
    );
    assert_eq!(second.parent_span_id, span_id(release));

    // Each request is a child of its attempt, and the receiver got the request span's context.
    let received = setup.receiver.received();
    for (attempt, request) in [(first, &received[0]), (second, &received[1])] {
        let webhook = spans
            .iter()
            .find(|s| s.name == "herald.webhook" && s.parent_span_id == span_id(attempt))
            .expect("the attempt's request span");
        let seen = TraceParent::parse(request.header("traceparent")).expect("a traceparent");
        assert_eq!(seen.trace_id, caller.trace_id);
        assert_eq!(SpanId::from(seen.span_id), span_id(webhook));
    }
    setup.sandbox.stop().await;
}

/// A program publishing straight to `herald.events` sends its trace context the AMQP way, as a
/// `traceparent` header (one message, one event): the matcher's span continues it, and so does
/// everything after it, up to the receiver.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_published_to_the_broker_continues_its_traceparent_header() {
    let (exporter, provider) = capture_spans();
    let setup = webhook_setup("order.shipped", json!({})).await;
    let publisher = TraceParent::root();
    let event = json!({"type": "order.shipped", "tenant_id": setup.tenant.id, "data": {"n": 1}});
    setup
        .sandbox
        .broker()
        .await
        .basic_publish(
            EVENTS_EXCHANGE.into(),
            "order.shipped".into(),
            BasicPublishOptions::default(),
            event.to_string().as_bytes(),
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id("traced-outside-1".into())
                .with_headers(string_headers([(
                    TRACEPARENT,
                    publisher.to_string().as_str(),
                )])),
        )
        .await
        .expect("publish")
        .await
        .expect("the broker takes it");
    eventually("the webhook", Duration::from_secs(30), || async {
        (setup.receiver.count() == 1).then_some(())
    })
    .await;

    let spans = eventually("the trace's spans", Duration::from_secs(10), || async {
        let _ = provider.force_flush();
        let spans = spans_of(&exporter, &publisher);
        let named = |name: &str| spans.iter().filter(|s| s.name == name).count();
        (named("herald.match") == 1 && named("herald.attempt") == 1 && named("herald.webhook") == 1)
            .then_some(spans)
    })
    .await;
    let one = |name: &str| -> &SpanData {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}: {spans:?}"))
    };
    assert!(
        spans.iter().all(|s| s.name != "herald.ingest"),
        "ingest never saw it"
    );
    let matched = one("herald.match");
    assert_eq!(
        matched.parent_span_id,
        SpanId::from(publisher.span_id),
        "continues the publisher's header"
    );
    let attempt = one("herald.attempt");
    assert_eq!(attempt.parent_span_id, span_id(matched));
    let webhook = one("herald.webhook");
    assert_eq!(webhook.parent_span_id, span_id(attempt));
    let received = setup.receiver.received();
    let seen = TraceParent::parse(received[0].header("traceparent")).expect("a traceparent");
    assert_eq!(seen.trace_id, publisher.trace_id);
    assert_eq!(SpanId::from(seen.span_id), span_id(webhook));
    setup.sandbox.stop().await;
}

fn step_of(span: &SpanData) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "herald.step")
        .map(|kv| kv.value.as_str().into_owned())
}

/// A workflow run is one trace: the run's attempt span, then a span per step, each step's the
/// child of the step that started it.
#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_run_is_one_trace_with_a_span_per_step() {
    let (exporter, provider) = capture_spans();
    let sandbox = herald_tests::Sandbox::start().await;
    let receiver = herald_tests::Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            json!({"name": "flow", "event_types": ["user.created"], "handler": {
                "type": "workflow", "steps": [
                    {"id": "a", "handler": {"type": "webhook", "url": receiver.url("/")}},
                    {"id": "b", "depends_on": ["a"],
                     "handler": {"type": "webhook", "url": receiver.url("/")}}]}}),
        )
        .await;
    let caller = TraceParent::root();
    let response = sandbox
        .http_request(Method::POST, "/v1/events", &tenant.key)
        .header("traceparent", caller.to_string())
        .json(&json!({"type": "user.created"}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(response.status(), 202);
    let spans = eventually("the run's spans", Duration::from_secs(30), || async {
        let _ = provider.force_flush();
        let spans = spans_of(&exporter, &caller);
        let attempts = spans.iter().filter(|s| s.name == "herald.attempt").count();
        (receiver.count() == 2 && attempts == 3).then_some(spans)
    })
    .await;
    let attempt = |step: Option<&str>| -> &SpanData {
        spans
            .iter()
            .find(|s| s.name == "herald.attempt" && step_of(s).as_deref() == step)
            .unwrap_or_else(|| panic!("no attempt span of step {step:?}"))
    };
    let (run, a, b) = (attempt(None), attempt(Some("a")), attempt(Some("b")));
    assert_eq!(a.parent_span_id, span_id(run));
    assert_eq!(b.parent_span_id, span_id(a), "b follows a");
    sandbox.stop().await;
}
