//! `email` actions against a real SMTP server on loopback (aiosmtpd): the message its templates
//! render arrives, logged in with a tenant secret; a 4xx answer is retried and a 5xx one fails
//! at once with the server's words; unencrypted SMTP only to allow-listed hosts; the operator's
//! default relay for actions that name no server.

use std::sync::OnceLock;
use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{MailServer, Sandbox, SandboxOptions};
use serde_json::{Value, json};

const SMTP_PASSWORD: &str = "smtp-pass-3f9a";

fn email_action(name: &str, smtp: Option<Value>, extra: Value) -> Value {
    let mut handler = json!({"type": "email",
        "from": "Billing <billing@example.com>",
        "to": ["{{ event.data.user.email }}"],
        "subject": "Receipt for order {{ event.data.order_id }}",
        "text": "Hello {{ event.data.user.name }}, thank you."});
    if let Some(smtp) = smtp {
        handler["smtp"] = smtp;
    }
    for (k, v) in extra.as_object().unwrap() {
        handler[k] = v.clone();
    }
    json!({"name": name, "event_types": ["order.paid"], "handler": handler,
           "retry": {"max_attempts": 2, "delays_s": [1]}})
}

fn plain_smtp(server: &MailServer) -> Value {
    json!({"host": "127.0.0.1", "port": server.port, "security": "none"})
}

async fn run_one(sandbox: &Sandbox, tenant: &TestTenant, data: Value) -> Value {
    let event = sandbox
        .event(tenant, json!({"type": "order.paid", "data": data}))
        .await;
    let executions = sandbox
        .terminal_executions(tenant, &event, 1, Duration::from_secs(30))
        .await;
    sandbox
        .execution(tenant, executions[0]["id"].as_str().unwrap())
        .await
}

fn order(email: &str) -> Value {
    json!({"order_id": "A-17", "user": {"name": "Ann <b>", "email": email}})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_action_sends_the_message_its_templates_render() {
    let sandbox = Sandbox::start().await;
    let server = MailServer::start(Some(&format!("mailer:{SMTP_PASSWORD}")));
    let tenant = sandbox.tenant().await;
    assert_eq!(
        sandbox
            .put_secret(&tenant, "smtp_password", SMTP_PASSWORD)
            .await,
        201
    );
    let mut smtp = plain_smtp(&server);
    smtp["username"] = json!("mailer");
    smtp["password"] = json!("{{ secrets.smtp_password }}");
    let created = sandbox
        .action(
            &tenant,
            email_action(
                "receipt",
                Some(smtp),
                json!({"cc": ["accounts@example.com"], "bcc": ["audit@example.com"],
                       "reply_to": "support@example.com",
                       "html": "<p>Hello {{ event.data.user.name }}</p>"}),
            ),
        )
        .await;
    assert_eq!(created["handler"]["smtp"]["password"], "***");

    let execution = run_one(&sandbox, &tenant, order("ann@example.org")).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    let mail = server.mail();
    assert_eq!(mail.len(), 1);
    let message = &mail[0];
    assert_eq!(message.login.as_deref(), Some("mailer"));
    assert_eq!(message.mail_from, "billing@example.com");
    assert_eq!(
        message.rcpt_tos,
        [
            "ann@example.org",
            "accounts@example.com",
            "audit@example.com"
        ]
    );
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Receipt for order A-17")
    );
    assert_eq!(
        message.header("Reply-To").as_deref(),
        Some("support@example.com")
    );
    assert_eq!(
        message.header("Bcc"),
        None,
        "bcc is not shown to recipients"
    );
    let id = execution["id"].as_str().unwrap();
    assert_eq!(
        message.header("Message-ID"),
        Some(format!("<{id}@example.com>")),
        "one id for every attempt of the execution"
    );
    assert!(
        message.data.contains("Hello Ann <b>, thank you."),
        "{}",
        message.data
    );
    assert!(
        message.data.contains("<p>Hello Ann &lt;b&gt;</p>"),
        "HTML escaped: {}",
        message.data
    );
    let attempt = &execution["attempts"][0];
    assert_eq!(attempt["response_status"], 250);
    let body = attempt["response_body"].as_str().unwrap();
    assert!(body.contains("queued") && body.contains(id), "{body}");
    assert!(!execution.to_string().contains(SMTP_PASSWORD));
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_answer_is_retried_and_a_5xx_answer_fails_at_once_with_its_words() {
    let sandbox = Sandbox::start().await;
    let server = MailServer::start(None);
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            email_action("smtp-answers", Some(plain_smtp(&server)), json!({})),
        )
        .await;
    let deferred = run_one(&sandbox, &tenant, order("defer@example.org")).await;
    assert_eq!(deferred["status"], "failed", "{deferred}");
    let attempts = deferred["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "retried on the action's schedule");
    for attempt in attempts {
        assert_eq!(attempt["error_kind"], "smtp_deferred", "{attempt}");
    }
    let rejected = run_one(&sandbox, &tenant, order("reject@example.org")).await;
    assert_eq!(rejected["status"], "failed");
    let attempts = rejected["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "a 5xx is not retried");
    assert_eq!(attempts[0]["error_kind"], "smtp_rejected");
    let words = attempts[0]["error_message"].as_str().unwrap();
    assert!(
        words.contains("550") && words.contains("No such user"),
        "{words}"
    );
    assert!(server.mail().is_empty());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_smtp_only_to_allow_listed_hosts_and_starttls_only_where_offered() {
    let sandbox = Sandbox::start().await;
    let server = MailServer::start(None);
    let tenant = sandbox.tenant().await;
    // The sandbox allow-lists 127.0.0.1 only: 127.0.0.2 is loopback, and not on the list.
    let mut outside = plain_smtp(&server);
    outside["host"] = json!("127.0.0.2");
    sandbox
        .action(
            &tenant,
            email_action("not-listed", Some(outside), json!({})),
        )
        .await;
    let refused = run_one(&sandbox, &tenant, order("ann@example.org")).await;
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["attempts"][0]["error_kind"], "destination_refused");

    let mut tls = plain_smtp(&server);
    tls["security"] = json!("starttls");
    let mut action = email_action("needs-tls", Some(tls), json!({}));
    action["event_types"] = json!(["order.shipped"]);
    sandbox.action(&tenant, action).await;
    let event = sandbox
        .event(
            &tenant,
            json!({"type": "order.shipped", "data": order("ann@example.org")}),
        )
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    let execution = sandbox
        .execution(&tenant, executions[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(execution["status"], "failed", "{execution}");
    let attempts = execution["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        1,
        "a server without STARTTLS will not offer it later"
    );
    let message = attempts[0]["error_message"].as_str().unwrap();
    assert!(message.to_lowercase().contains("starttls"), "{message}");
    assert!(server.mail().is_empty(), "nothing went unencrypted");
    sandbox.stop().await;
}

/// The port of the relay the next test's services are configured with.
static RELAY_PORT: OnceLock<u16> = OnceLock::new();

#[tokio::test(flavor = "multi_thread")]
async fn an_email_without_its_own_server_goes_through_the_default_relay() {
    let server = MailServer::start(None);
    RELAY_PORT.set(server.port).expect("set once");
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| {
            let relay = &mut config.executor.smtp;
            relay.host = "127.0.0.1".into();
            relay.port = *RELAY_PORT.get().expect("the relay's port");
            relay.security = "none".into();
        },
        ..SandboxOptions::default()
    })
    .await;
    let tenant = sandbox.tenant().await;
    let created = sandbox
        .action(&tenant, email_action("relayed", None, json!({})))
        .await;
    assert!(created["handler"].get("smtp").is_none());
    let execution = run_one(&sandbox, &tenant, order("ann@example.org")).await;
    assert_eq!(execution["status"], "succeeded", "{execution}");
    assert_eq!(server.mail().len(), 1);
    assert_eq!(
        execution["attempts"][0]["request_url"],
        format!("smtp://127.0.0.1:{}", server.port)
    );
    sandbox.stop().await;
}
