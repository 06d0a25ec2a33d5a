//! `cargo xtask up`: the whole cluster on this machine, and an event turned into a delivered,
//! signed webhook and an email before your eyes (the email through a mail sink on loopback,
//! the stack's default SMTP relay). Runs until Ctrl-C, then stops everything in order.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use herald_handlers::signing::{SigningKey, generate_secret, verify};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::Api;
use crate::ports;
use crate::smtp_sink::{Mail, SmtpSink};
use crate::stack::{PreferredPorts, Stack, StackOptions};

pub struct UpOptions {
    /// Build and run the optimised binaries.
    pub release: bool,
    /// Start the cluster without the demo tenant, action and event.
    pub no_demo: bool,
}

/// A webhook the demo receiver got, with its signature already checked.
struct Delivered {
    path: String,
    headers: HeaderMap,
    body: Bytes,
    verified: bool,
}

struct ReceiverState {
    key: SigningKey,
    deliveries: mpsc::UnboundedSender<Delivered>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let timestamp = header(&headers, "webhook-timestamp").parse().unwrap_or(0);
    let verified = verify(
        &state.key,
        header(&headers, "webhook-signature"),
        header(&headers, "webhook-id"),
        timestamp,
        &body,
    );
    let _ = state.deliveries.send(Delivered {
        path: uri.path().to_owned(),
        headers,
        body,
        verified,
    });
    "ok"
}

fn print_delivery(delivered: &Delivered) {
    let body: Value = serde_json::from_slice(&delivered.body).unwrap_or(Value::Null);
    println!(
        "<== webhook received: POST {}  webhook-id={}  type={}  signature {}",
        delivered.path,
        header(&delivered.headers, "webhook-id"),
        body["type"].as_str().unwrap_or("?"),
        if delivered.verified {
            "verified"
        } else {
            "INVALID"
        }
    );
}

pub fn build(root: &Path, release: bool) -> anyhow::Result<()> {
    eprintln!(
        "==> building the services ({})",
        if release { "release" } else { "debug" }
    );
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(root)
        .args(["build", "--quiet", "--bins", "-p", "herald-ingest"])
        .args([
            "-p",
            "herald-matcher",
            "-p",
            "herald-executor",
            "-p",
            "herald-scheduler",
        ]);
    if release {
        command.arg("--release");
    }
    if !command.status()?.success() {
        bail!("the build failed");
    }
    Ok(())
}

pub fn run(root: &Path, options: UpOptions) -> anyhow::Result<ExitCode> {
    build(root, options.release)?;
    let runtime = tokio::runtime::Runtime::new()?;
    // Listen for Ctrl-C from the start, so an early one still stops what was started.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });

    let (mail_tx, mut mail) = mpsc::unbounded_channel();
    let sink_port = if ports::in_use(2525) { 0 } else { 2525 };
    let sink = runtime.block_on(SmtpSink::start(sink_port, mail_tx))?;
    let base = root.join(".herald");
    let profile = if options.release { "release" } else { "debug" };
    let mut stack = Stack::start(StackOptions {
        base: base.clone(),
        bin_dir: root.join("target").join(profile),
        ports: PreferredPorts::default(),
        fast_database: false,
        replicas: BTreeMap::new(),
        // The demo receiver listens on loopback, which the SSRF guard refuses by default; the
        // mail sink is the operator's default relay, which it trusts.
        env: vec![
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS".into(),
                "127.0.0.1/32".into(),
            ),
            ("HERALD_EXECUTOR__SMTP__HOST".into(), "127.0.0.1".into()),
            ("HERALD_EXECUTOR__SMTP__PORT".into(), sink.port.to_string()),
            ("HERALD_EXECUTOR__SMTP__SECURITY".into(), "none".into()),
        ],
    })?;
    let outcome = runtime.block_on(async {
        if !options.no_demo && !*stop_rx.borrow() {
            demo(&stack, &mut mail).await?;
        }
        tokio::spawn(async move {
            while let Some(mail) = mail.recv().await {
                print_mail(&mail);
            }
        });
        print_banner(&stack, &base);
        println!(
            "  mail sink      smtp://127.0.0.1:{} (the default relay; what it takes is printed here)",
            sink.port
        );
        let _ = stop_rx.wait_for(|stop| *stop).await;
        anyhow::Ok(())
    });
    eprintln!("\n==> stopping: services first, then the broker and the database");
    stack.stop();
    drop(runtime);
    outcome?;
    Ok(ExitCode::SUCCESS)
}

fn print_mail(mail: &Mail) {
    println!(
        "<== email to {} via the mail sink: {}",
        mail.to.join(", "),
        mail.header("subject")
    );
}

/// Creates a tenant, a key, a webhook action pointing at a local receiver and an email action
/// (through the mail sink), sends an event and shows the signed webhook and the email that come
/// out. The receiver keeps printing what it gets.
async fn demo(stack: &Stack, mail: &mut mpsc::UnboundedReceiver<Mail>) -> anyhow::Result<()> {
    let secret = generate_secret();
    let (deliveries, mut received) = mpsc::unbounded_channel();
    let state = Arc::new(ReceiverState {
        key: SigningKey::from_secret(&secret).map_err(|e| anyhow::anyhow!("{e}"))?,
        deliveries,
    });
    let port = if ports::in_use(9999) {
        ports::free_port()?
    } else {
        9999
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = Router::new().fallback(receive).with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let receiver_url = format!("http://127.0.0.1:{port}/webhooks/demo");

    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        base: stack.api_url.clone(),
    };
    let (tenant_id, key) = api.tenant_with_key(&stack.admin_token, "demo").await?;
    api.call(
        "POST",
        "/v1/actions",
        &key,
        json!({
            "name": "demo-receiver",
            "event_types": ["payment_intent.succeeded"],
            "handler": {"type": "webhook", "url": receiver_url, "secret": secret},
        }),
    )
    .await?;
    api.call(
        "POST",
        "/v1/actions",
        &key,
        json!({
            "name": "demo-receipt",
            "event_types": ["payment_intent.succeeded"],
            "handler": {"type": "email", "from": "Herald demo <demo@herald.example>",
                        "to": ["{{ event.data.customer_email }}"],
                        "subject": "Payment {{ event.data.id }} succeeded",
                        "text": "We received {{ event.data.amount / 100 }} {{ event.data.currency | upper }}."},
        }),
    )
    .await?;
    println!(
        "\n==> demo: tenant {tenant_id}, actions sending payment_intent.succeeded to {receiver_url} \
         and as an email"
    );

    let event = json!({
        "type": "payment_intent.succeeded",
        "source": "demo",
        "data": {"id": "pi_123", "amount": 2000, "currency": "usd",
                 "customer_email": "ann@example.com"},
    });
    println!("==> POST {}/v1/events {event}", stack.api_url);
    let accepted = api.call("POST", "/v1/events", &key, event).await?;
    let event_id = accepted["id"].as_str().context("event id")?.to_owned();
    println!("    202 Accepted {accepted}");

    let delivered = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .context("no webhook arrived within 30 s; see the logs under .herald/logs")?
        .context("the receiver stopped")?;
    print_delivery(&delivered);
    for name in [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
    ] {
        println!("    {name}: {}", header(&delivered.headers, name));
    }
    println!("    body: {}", String::from_utf8_lossy(&delivered.body));
    if !delivered.verified {
        bail!("the demo webhook's signature did not verify");
    }
    let sent = tokio::time::timeout(Duration::from_secs(30), mail.recv())
        .await
        .context("no email arrived within 30 s; see the logs under .herald/logs")?
        .context("the mail sink stopped")?;
    print_mail(&sent);
    for name in ["from", "to", "subject", "message-id"] {
        println!("    {name}: {}", sent.header(name));
    }
    let body = sent.data.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("    body: {}", body.trim_end());
    // The receiver has the webhook a moment before the executor records its answer: show the
    // execution once it has its outcome (or as it is after ten seconds).
    let terminal = |view: &Value| {
        view["executions"].as_array().is_some_and(|all| {
            all.iter().all(|e| {
                matches!(
                    e["status"].as_str(),
                    Some("succeeded" | "failed" | "cancelled")
                )
            })
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        let view = api
            .call("GET", &format!("/v1/events/{event_id}"), &key, Value::Null)
            .await?;
        if terminal(&view) || std::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for execution in view["executions"].as_array().into_iter().flatten() {
        println!(
            "==> execution {} is {}",
            execution["id"].as_str().unwrap_or("?"),
            execution["status"].as_str().unwrap_or("?")
        );
    }
    tokio::spawn(async move {
        while let Some(delivered) = received.recv().await {
            print_delivery(&delivered);
        }
    });
    println!("\nTry it yourself with the demo tenant's key:");
    println!(
        "  curl -s {}/v1/events -H 'authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"type\":\"payment_intent.succeeded\",\"data\":{{\"id\":\"pi_124\",\"amount\":4200,\"currency\":\"eur\",\"customer_email\":\"bob@example.com\"}}}}'",
        stack.api_url
    );
    Ok(())
}

fn print_banner(stack: &Stack, base: &Path) {
    println!("\nHerald is running (Ctrl-C stops it):");
    println!("  API            {}", stack.api_url);
    println!(
        "  console        {}/ui/  (sign in with the admin token, or a tenant key)",
        stack.api_url
    );
    println!("  admin token    {}", stack.admin_token);
    println!(
        "  broker         {}",
        herald_common::config::redact_url(&stack.amqp_url)
    );
    if let Some(management) = &stack.management_url {
        println!("  broker UI      {management}");
    }
    println!(
        "  database       {}",
        herald_common::config::redact_url(&stack.database_url)
    );
    for service in &stack.services {
        println!(
            "  {:<16} http://127.0.0.1:{}/metrics  log {}",
            service.binary,
            service.ops_port,
            service.log.display()
        );
    }
    println!("  data           {}", base.display());
}
