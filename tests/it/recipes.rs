//! The README's recipes, as written there: each `http` action runs against a local receiver
//! standing for its service, which checks the request that service documents (path, auth,
//! content type, the fields it requires) and answers as it does.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use herald_tests::{Receiver, Reply, Sandbox};
use serde_json::Value;

use crate::support::root;

/// A recipe's stand-in service: the origin the README's action calls, how it answers, and
/// what it checks of the request it gets.
struct Service {
    recipe: &'static str,
    origin: &'static str,
    status: u16,
    check: fn(&herald_tests::receiver::Received, &str),
}

/// Secret values for the names recipes use.
const SECRETS: [(&str, &str); 7] = [
    ("slack_webhook_path", "T000/B000/XXXX"),
    ("slack_bot_token", "xoxb-test-1"),
    (
        "teams_workflow",
        "abc/triggers/manual/paths/invoke?api-version=2016-06-01&sv=1.0&sig=s1g",
    ),
    ("discord_webhook", "123/tok"),
    ("twilio_auth_token", "twilio-token"),
    ("sendgrid_api_key", "SG.test-key"),
    ("pagerduty_routing_key", "R0123456789abcdef0123456789abcde"),
];

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| panic!("a string at {pointer} in {value}"))
}

fn json_content(request: &herald_tests::receiver::Received) -> Value {
    assert!(
        request
            .header("content-type")
            .starts_with("application/json"),
        "{}",
        request.header("content-type")
    );
    request.json()
}

const SERVICES: [Service; 7] = [
    Service {
        recipe: "slack-webhook",
        origin: "https://hooks.slack.com",
        status: 200,
        check: |request, _| {
            assert_eq!(request.path, "/services/T000/B000/XXXX");
            let body = json_content(request);
            assert!(text(&body, "/text").contains("49.99 EUR"), "{body}");
            assert_eq!(text(&body, "/blocks/0/type"), "section");
            assert_eq!(text(&body, "/blocks/0/text/type"), "mrkdwn");
        },
    },
    Service {
        recipe: "slack-chat-post-message",
        origin: "https://slack.com",
        status: 200,
        check: |request, _| {
            assert_eq!(request.path, "/api/chat.postMessage");
            assert_eq!(request.header("authorization"), "Bearer xoxb-test-1");
            assert_eq!(
                request.header("content-type"),
                "application/json; charset=utf-8"
            );
            let body = request.json();
            assert_eq!(text(&body, "/channel"), "C0123456789");
            assert!(text(&body, "/text").contains("Ann Lee"));
        },
    },
    Service {
        recipe: "teams",
        origin: "https://prod-00.westeurope.logic.azure.com",
        status: 202,
        check: |request, _| {
            assert_eq!(request.path, "/workflows/abc/triggers/manual/paths/invoke");
            assert!(request.query.contains("sig=s1g"), "{}", request.query);
            let body = json_content(request);
            assert_eq!(text(&body, "/type"), "message");
            assert_eq!(
                text(&body, "/attachments/0/contentType"),
                "application/vnd.microsoft.card.adaptive"
            );
            assert_eq!(text(&body, "/attachments/0/content/type"), "AdaptiveCard");
            assert!(text(&body, "/attachments/0/content/body/1/text").contains("card_declined"));
        },
    },
    Service {
        recipe: "discord",
        origin: "https://discord.com",
        status: 204,
        check: |request, _| {
            assert_eq!(request.path, "/api/webhooks/123/tok");
            let body = json_content(request);
            let content = text(&body, "/content");
            assert!(content.len() <= 2000 && content.contains("**Ann Lee**"));
            assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
        },
    },
    Service {
        recipe: "twilio-sms",
        origin: "https://api.twilio.com",
        status: 201,
        check: |request, _| {
            assert_eq!(
                request.path,
                "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json"
            );
            assert_eq!(
                request.header("content-type"),
                "application/x-www-form-urlencoded"
            );
            let basic = base64::engine::general_purpose::STANDARD
                .encode("AC0123456789abcdef0123456789abcdef:twilio-token");
            assert_eq!(request.header("authorization"), format!("Basic {basic}"));
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            assert_eq!(form["To"], "+15005550006");
            assert_eq!(form["From"], "+15005550006");
            assert!(form["Body"].contains("49.99 EUR"), "{form:?}");
        },
    },
    Service {
        recipe: "sendgrid",
        origin: "https://api.sendgrid.com",
        status: 202,
        check: |request, _| {
            assert_eq!(request.path, "/v3/mail/send");
            assert_eq!(request.header("authorization"), "Bearer SG.test-key");
            let body = json_content(request);
            assert_eq!(
                text(&body, "/personalizations/0/to/0/email"),
                "ann@example.com"
            );
            assert_eq!(text(&body, "/from/email"), "billing@example.com");
            text(&body, "/subject");
            assert_eq!(text(&body, "/content/0/type"), "text/plain");
            assert!(text(&body, "/content/0/value").contains("in_1042"));
        },
    },
    Service {
        recipe: "pagerduty",
        origin: "https://events.pagerduty.com",
        status: 202,
        check: |request, event_id| {
            assert_eq!(request.path, "/v2/enqueue");
            let body = json_content(request);
            assert_eq!(text(&body, "/routing_key").len(), 32);
            assert_eq!(text(&body, "/event_action"), "trigger");
            assert_eq!(text(&body, "/dedup_key"), event_id);
            text(&body, "/payload/summary");
            assert_eq!(text(&body, "/payload/source"), "billing");
            assert!(
                ["critical", "error", "warning", "info"]
                    .contains(&text(&body, "/payload/severity"))
            );
            assert_eq!(body["payload"]["custom_details"]["invoice_id"], "in_1042");
        },
    },
];

/// The JSON block that follows `marker` in the README.
fn block_after<'a>(readme: &'a str, marker: &str) -> &'a str {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let rest = &readme[start..];
    let open = rest.find("```json\n").expect("a JSON block") + "```json\n".len();
    let close = rest[open..].find("```").expect("the block's end");
    &rest[open..open + close]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_recipe_of_the_readme_sends_what_its_service_documents() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    for (name, value) in SECRETS {
        assert_eq!(sandbox.put_secret(&tenant, name, value).await, 201);
    }
    let mut receivers = Vec::new();
    for service in &SERVICES {
        let receiver = Receiver::start().await;
        receiver.fallback(Reply::status(service.status));
        let recipe = block_after(&readme, &format!("<!-- recipe: {} -->", service.recipe))
            .replace(service.origin, &receiver.url(""));
        let action: Value =
            serde_json::from_str(&recipe).unwrap_or_else(|e| panic!("{}: {e}", service.recipe));
        sandbox.action(&tenant, action).await;
        receivers.push(receiver);
    }
    let event: Value =
        serde_json::from_str(block_after(&readme, "They all take this event:")).expect("event");
    let event_id = sandbox.event(&tenant, event).await;
    let executions = sandbox
        .terminal_executions(&tenant, &event_id, SERVICES.len(), Duration::from_secs(30))
        .await;
    for execution in &executions {
        assert_eq!(execution["status"], "succeeded", "{execution}");
    }
    for (service, receiver) in SERVICES.iter().zip(&receivers) {
        let received = receiver.received();
        assert_eq!(received.len(), 1, "{}", service.recipe);
        assert_eq!(received[0].method, "POST", "{}", service.recipe);
        (service.check)(&received[0], &event_id);
    }
    sandbox.stop().await;
}
