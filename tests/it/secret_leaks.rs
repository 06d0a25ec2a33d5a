//! One known secret goes through every handler type that can carry one (a webhook's body and
//! header, an `http` request's bearer token, query, body and OAuth client secret, an email's
//! body and SMTP password), through a failed attempt whose answer echoes it, and through a
//! test render; then nothing Herald keeps or shows holds it: not the log lines of every
//! service at `trace`, not the spans they record, not their metrics, not the API's reads, not
//! the text of any row of any table.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use herald_common::config::ServiceName;
use herald_tests::{MailServer, Receiver, Reply, Sandbox};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use reqwest::Method;
use serde_json::{Value, json};

const CANARY: &str = "canary-5ecret-7Qx2Lm9w";
const SMTP_USER: &str = "mailer";

/// Every log line of this test process, at every level.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs a `trace`-level subscriber writing to `Lines` and a recording tracer, before the
/// sandbox installs its own (which then stays unused).
fn capture() -> (Lines, InMemorySpanExporter) {
    let lines = Lines::default();
    let writer = lines.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider);
    (lines, exporter)
}

fn action(name: &str, handler: Value) -> Value {
    json!({"name": name, "event_types": ["order.paid"], "handler": handler,
           "retry": {"max_attempts": 2, "delays_s": [1]}})
}

/// Every row of every table of the sandbox's database, as text.
async fn database_text(sandbox: &Sandbox) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(sandbox.store.pool())
    .await
    .expect("list tables");
    assert!(tables.len() > 5, "{tables:?}");
    let mut rows = Vec::new();
    for table in tables {
        let texts: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(sandbox.store.pool())
            .await
            .expect("read a table");
        rows.extend(texts.into_iter().map(|t| (table.clone(), t)));
    }
    rows
}

fn text(body: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(body)
}

fn assert_absent(what: &str, text: &str) {
    if let Some(at) = text.find(CANARY) {
        let bytes = text.as_bytes();
        let around = &bytes[at.saturating_sub(300)..(at + 300).min(bytes.len())];
        panic!(
            "the secret is in {what}: …{}…",
            String::from_utf8_lossy(around)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_sent_through_every_handler_is_in_no_log_span_metric_read_or_row() {
    let (lines, spans) = capture();
    let mut sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    for name in ["token", "client_secret", "smtp_password"] {
        sandbox.put_secret(&tenant, name, CANARY).await;
    }
    let hooks = Receiver::start().await;
    // The first answer echoes what it was sent, as some APIs do in their errors.
    hooks.script([Reply::status(500).with_body(format!("bad token {CANARY}"))]);
    let api = Receiver::start().await;
    let auth = Receiver::start().await;
    auth.fallback(
        Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body(
                json!({"access_token": "short-lived", "token_type": "Bearer", "expires_in": 3600})
                    .to_string(),
            ),
    );
    let mail = MailServer::start(Some(&format!("{SMTP_USER}:{CANARY}")));
    let actions = [
        action(
            "webhook",
            json!({"type": "webhook", "url": hooks.url("/in"),
                   "headers": {"authorization": "Bearer {{ secrets.token }}"},
                   "body": {"key": "{{ secrets.token }}", "order": "{{ event.data.id }}"}}),
        ),
        action(
            "bearer",
            json!({"type": "http", "url": api.url("/notes"),
                   "query": {"key": "{{ secrets.token }}"},
                   "auth": {"type": "bearer", "token": "{{ secrets.token }}"},
                   "body": {"note": "key {{ secrets.token }}"}}),
        ),
        action(
            "oauth",
            json!({"type": "http", "url": api.url("/crm"),
                   "auth": {"type": "oauth2_client_credentials", "token_url": auth.url("/token"),
                            "client_id": "herald", "client_secret": "{{ secrets.client_secret }}"}}),
        ),
        action(
            "email",
            json!({"type": "email",
                   "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none",
                            "username": SMTP_USER, "password": "{{ secrets.smtp_password }}"},
                   "from": "billing@example.com", "to": ["ann@example.com"],
                   "subject": "Order {{ event.data.id }}",
                   "text": "Your key is {{ secrets.token }}"}),
        ),
        // Fails for good at render, with an error that would quote what it rendered.
        action(
            "bad-address",
            json!({"type": "email",
                   "smtp": {"host": "127.0.0.1", "port": mail.port, "security": "none"},
                   "from": "billing@example.com", "to": ["{{ secrets.token }}"],
                   "subject": "s", "text": "t"}),
        ),
    ];
    let mut ids = Vec::new();
    for spec in actions {
        ids.push(
            sandbox.action(&tenant, spec).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let event = sandbox
        .event(&tenant, json!({"type": "order.paid", "data": {"id": 42}}))
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event, ids.len(), Duration::from_secs(30))
        .await;
    for execution in &executions {
        let bad = execution["action_id"] == ids[4].as_str();
        let wanted = if bad { "failed" } else { "succeeded" };
        assert_eq!(execution["status"], wanted, "{execution}");
    }
    // The remote parties did get the secret: it was used, not dropped.
    assert!(
        hooks
            .received()
            .iter()
            .any(|r| text(&r.body).contains(CANARY))
    );
    assert!(api.received().iter().any(|r| r.query.contains(CANARY)));
    let token_request = &auth.received()[0];
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("herald:{CANARY}"));
    assert!(
        text(&token_request.body).contains(CANARY)
            || token_request.header("authorization") == format!("Basic {basic}")
    );
    assert!(mail.mail()[0].data.contains(CANARY));

    let mut reads = Vec::new();
    for path in ["/v1/actions", "/v1/secrets", "/v1/executions?limit=100"] {
        reads.push(
            sandbox
                .call(Method::GET, path, Some(&tenant.key), None)
                .await
                .1,
        );
    }
    for execution in &executions {
        let id = execution["id"].as_str().unwrap();
        reads.push(sandbox.execution(&tenant, id).await);
    }
    for id in &ids {
        let (status, report) = sandbox
            .call(
                Method::POST,
                &format!("/v1/actions/{id}/test"),
                Some(&tenant.key),
                Some(json!({"event": {"type": "order.paid", "data": {"id": 43}}})),
            )
            .await;
        assert_eq!(status, 200, "{report}");
        let rendered = report.get("rendered").or(report.get("render_error"));
        assert!(rendered.is_some(), "{report}");
        reads.push(report);
    }
    for read in &reads {
        assert_absent("an API answer", &read.to_string());
    }
    for service in [ServiceName::Ingest, ServiceName::Executor] {
        for ops in sandbox.ops_addrs(service) {
            assert_absent("the metrics", &sandbox.metrics_text(ops).await);
        }
    }
    for (table, row) in database_text(&sandbox).await {
        assert_absent(&format!("table {table}"), &row);
    }
    // Stop the services so that every span has ended and every line is written.
    sandbox.stop_service(ServiceName::Executor).await;
    sandbox.stop_service(ServiceName::Ingest).await;
    let recorded = spans.get_finished_spans().unwrap_or_default();
    assert!(!recorded.is_empty(), "the services recorded spans");
    assert_absent("a span", &format!("{recorded:?}"));
    let logged = lines.text();
    assert!(
        logged.contains("TRACE"),
        "the services logged at trace level"
    );
    assert_absent("a log line", &logged);
    sandbox.stop().await;
}
