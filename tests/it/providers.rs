//! Inbound provider webhooks: a tenant registers a provider; its deliveries to
//! `POST /v1/hooks/{id}`, signed by each of the four schemes, become events that run actions;
//! a delivery that fails verification answers 401 and stores nothing; a redelivery is a
//! duplicate.

use std::time::Duration;

use chrono::Utc;
use herald_common::ids::ProviderId;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox, eventually};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{SECRET, run_python, webhook_action};

/// A Stripe-style or GitHub-style secret: Herald keys the HMAC with its bytes.
const PLAIN_SECRET: &str = "It's a Secret to Everybody";

/// Registers a provider and returns its JSON (with the secret, shown this once).
async fn provider(sandbox: &Sandbox, tenant: &TestTenant, spec: Value) -> Value {
    let (status, created) = sandbox
        .call(Method::POST, "/v1/providers", Some(&tenant.key), Some(spec))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Sends a provider's delivery as the provider would: exact bytes, its own headers, no key.
async fn deliver(
    sandbox: &Sandbox,
    provider_id: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let api = sandbox.api.as_deref().expect("ingest runs");
    let mut request = sandbox
        .http
        .post(format!("{api}/v1/hooks/{provider_id}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("ingest reachable");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// HMAC-SHA256 of `parts` in lowercase hex, computed here rather than by Herald's code.
fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Standard Webhooks headers for `body`, made by the reference Python library.
async fn standard_webhooks_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Vec<(&'static str, String)> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/sign_provider_webhook.py"
    );
    let input = json!({"secret": secret, "id": id, "timestamp": timestamp, "body": body});
    let output = tokio::task::spawn_blocking(move || run_python(script, &input))
        .await
        .expect("the signer ran");
    assert!(
        output.status.success(),
        "the signing script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let headers: Value = serde_json::from_slice(&output.stdout).expect("headers as JSON");
    ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .map(|name| (name, headers[name].as_str().expect(name).to_owned()))
        .collect()
}

fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let signed = hmac_hex(
        secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    );
    format!("t={timestamp},v1={signed}")
}

/// Events stored for anyone in this sandbox.
async fn stored_events(sandbox: &Sandbox) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count events")
}

/// A sandbox, a receiver, and a tenant whose action sends `event_type` to the receiver.
async fn setup(event_type: &str) -> (Sandbox, Receiver, TestTenant) {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action("hook", event_type, &receiver.url("/hook"), json!({})),
        )
        .await;
    (sandbox, receiver, tenant)
}

/// Waits for the one webhook the receiver should get, and returns its JSON body.
async fn the_webhook(receiver: &Receiver) -> Value {
    eventually("the webhook", Duration::from_secs(30), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    receiver.received()[0].json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_webhooks_delivery_signed_by_the_reference_library_runs_actions_once() {
    let (sandbox, receiver, tenant) = setup("invoice.paid").await;
    let created = provider(
        &sandbox,
        &tenant,
        json!({
            "name": "billing",
            "scheme": "standard_webhooks",
            "secret": SECRET,
            "event_type": {"field": "type"},
        }),
    )
    .await;
    assert_eq!(created["secret"], SECRET, "shown in full on creation");
    assert_eq!(created["tolerance_s"], 300);
    let id = created["id"].as_str().expect("provider id");
    assert!(id.starts_with("prv_"), "{id}");
    assert_eq!(created["hook_path"], format!("/v1/hooks/{id}"));

    // Spaces and key order as the sender wrote them: the signature covers the exact bytes.
    let body = r#"{"type": "invoice.paid",  "data": {"amount": 2000}}"#;
    let headers = standard_webhooks_headers(SECRET, "msg_2xyz", Utc::now().timestamp(), body).await;
    let (status, answer) = deliver(&sandbox, id, &headers, body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"id": "msg_2xyz", "duplicate": false}));

    let webhook = the_webhook(&receiver).await;
    assert_eq!(webhook["id"], "msg_2xyz");
    assert_eq!(webhook["type"], "invoice.paid");
    assert_eq!(
        webhook["source"], "billing",
        "the provider's name by default"
    );
    assert_eq!(
        webhook["data"],
        json!({"type": "invoice.paid", "data": {"amount": 2000}})
    );
    assert_eq!(webhook["metadata"], json!({"provider_id": id}));

    // The provider retries (it missed the answer): the same webhook-id is the same event.
    let (status, again) = deliver(&sandbox, id, &headers, body.as_bytes()).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again, json!({"id": "msg_2xyz", "duplicate": true}));
    assert_eq!(stored_events(&sandbox).await, 1);
    let executions = sandbox
        .terminal_executions(&tenant, "msg_2xyz", 1, Duration::from_secs(10))
        .await;
    assert_eq!(executions[0]["status"], "succeeded");
    assert_eq!(receiver.count(), 1);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_delivery_takes_its_type_from_a_body_field_with_a_prefix() {
    let (sandbox, receiver, tenant) = setup("stripe.invoice.paid").await;
    let created = provider(
        &sandbox,
        &tenant,
        json!({
            "name": "stripe",
            "scheme": "stripe",
            "secret": "whsec_stripe_0123456789abcdef",
            "tolerance_s": 600,
            "event_type": {"field": "type"},
            "type_prefix": "stripe.",
            "source": "stripe.com",
        }),
    )
    .await;
    let id = created["id"].as_str().expect("provider id");
    let body = br#"{"id":"evt_1Nabc","object":"event","type":"invoice.paid","data":{"object":{"amount_paid":2000}}}"#;
    let signature = stripe_signature(
        "whsec_stripe_0123456789abcdef",
        Utc::now().timestamp(),
        body,
    );
    let headers = [("stripe-signature", signature)];
    let (status, answer) = deliver(&sandbox, id, &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        answer,
        json!({"id": "evt_1Nabc", "duplicate": false}),
        "the body's id is the event's"
    );

    let webhook = the_webhook(&receiver).await;
    assert_eq!(webhook["type"], "stripe.invoice.paid");
    assert_eq!(webhook["source"], "stripe.com");
    assert_eq!(webhook["data"]["data"]["object"]["amount_paid"], 2000);

    // Stripe signs each attempt anew (a later `t`); the body's id still makes it a duplicate.
    let resigned = stripe_signature(
        "whsec_stripe_0123456789abcdef",
        Utc::now().timestamp() + 1,
        body,
    );
    let (status, again) = deliver(&sandbox, id, &[("stripe-signature", resigned)], body).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(stored_events(&sandbox).await, 1);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_github_delivery_takes_its_type_from_a_header() {
    let (sandbox, receiver, tenant) = setup("github.push").await;
    let created = provider(
        &sandbox,
        &tenant,
        json!({
            "name": "github",
            "scheme": "github",
            "secret": PLAIN_SECRET,
            "event_type": {"header": "X-GitHub-Event"},
            "type_prefix": "github.",
        }),
    )
    .await;
    assert_eq!(created["tolerance_s"], Value::Null, "GitHub signs no time");
    let id = created["id"].as_str().expect("provider id");
    let body = br#"{"ref":"refs/heads/main","repository":{"full_name":"acme/app"}}"#;
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let headers = [
        (
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(PLAIN_SECRET.as_bytes(), &[body])),
        ),
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
    ];
    let (status, answer) = deliver(&sandbox, id, &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer, json!({"id": delivery, "duplicate": false}));

    let webhook = the_webhook(&receiver).await;
    assert_eq!(webhook["type"], "github.push");
    assert_eq!(webhook["source"], "github");
    assert_eq!(webhook["data"]["repository"]["full_name"], "acme/app");

    // "Redeliver" in GitHub's settings sends the same X-GitHub-Delivery.
    let (_, again) = deliver(&sandbox, id, &headers, body).await;
    assert_eq!(again["duplicate"], true, "{again}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_hmac_delivery_is_checked_in_its_configured_header() {
    let (sandbox, receiver, tenant) = setup("order.shipped").await;
    let created = provider(
        &sandbox,
        &tenant,
        json!({
            "name": "acme",
            "scheme": "hmac_sha256",
            "secret": PLAIN_SECRET,
            "signature_header": "X-Acme-Signature",
            "event_type": {"field": "event.kind"},
        }),
    )
    .await;
    assert_eq!(created["signature_header"], "x-acme-signature");
    let id = created["id"].as_str().expect("provider id");
    let body = br#"{"event":{"kind":"order.shipped"},"order":42}"#;
    let signature = hmac_hex(PLAIN_SECRET.as_bytes(), &[body]);
    let (status, answer) = deliver(&sandbox, id, &[("x-acme-signature", signature)], body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["duplicate"], false);
    let event_id = answer["id"].as_str().expect("a fresh event id");

    let webhook = the_webhook(&receiver).await;
    assert_eq!(webhook["id"], event_id);
    assert_eq!(webhook["type"], "order.shipped");
    assert_eq!(webhook["data"]["order"], 42);

    // The `sha256=` form is accepted too.
    let prefixed = format!("sha256={}", hmac_hex(PLAIN_SECRET.as_bytes(), &[body]));
    let (status, answer) = deliver(&sandbox, id, &[("x-acme-signature", prefixed)], body).await;
    assert_eq!(status, 202, "{answer}");
    sandbox.stop().await;
}

/// A case of a refused delivery: its name, the provider, the headers, the body and the code.
type Refusal<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, &'a str, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_fails_verification_answers_401_and_stores_nothing() {
    let (sandbox, receiver, tenant) = setup("#").await;
    let standard = provider(
        &sandbox,
        &tenant,
        json!({"name": "sw", "scheme": "standard_webhooks", "secret": SECRET,
               "event_type": {"field": "type"}}),
    )
    .await;
    let stripe = provider(
        &sandbox,
        &tenant,
        json!({"name": "stripe", "scheme": "stripe", "secret": PLAIN_SECRET,
               "tolerance_s": 60, "event_type": {"field": "type"}}),
    )
    .await;
    let github = provider(
        &sandbox,
        &tenant,
        json!({"name": "gh", "scheme": "github", "secret": PLAIN_SECRET,
               "event_type": {"header": "x-github-event"}}),
    )
    .await;
    let (standard, stripe, github) = (
        standard["id"].as_str().expect("id"),
        stripe["id"].as_str().expect("id"),
        github["id"].as_str().expect("id"),
    );
    let body = r#"{"id":"evt_1","type":"invoice.paid"}"#;
    let now = Utc::now().timestamp();
    let other_secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let wrong_secret = standard_webhooks_headers(other_secret, "msg_1", now, body).await;
    let stale = standard_webhooks_headers(SECRET, "msg_1", now - 600, body).await;
    let ahead = standard_webhooks_headers(SECRET, "msg_1", now + 600, body).await;
    let good = standard_webhooks_headers(SECRET, "msg_1", now, body).await;
    let github_event = ("x-github-event", "push".to_owned());
    let cases: Vec<Refusal> = vec![
        (
            "wrong secret",
            standard,
            wrong_secret,
            body,
            "invalid_signature",
        ),
        ("stale", standard, stale, body, "timestamp_out_of_tolerance"),
        ("ahead", standard, ahead, body, "timestamp_out_of_tolerance"),
        (
            "tampered body",
            standard,
            good.clone(),
            r#"{"id":"evt_1","type":"invoice.refunded"}"#,
            "invalid_signature",
        ),
        (
            "no signature",
            standard,
            good[..2].to_vec(),
            body,
            "invalid_signature",
        ),
        (
            "stripe, wrong secret",
            stripe,
            vec![(
                "stripe-signature",
                stripe_signature("other", now, body.as_bytes()),
            )],
            body,
            "invalid_signature",
        ),
        (
            "stripe, stale",
            stripe,
            vec![(
                "stripe-signature",
                stripe_signature(PLAIN_SECRET, now - 120, body.as_bytes()),
            )],
            body,
            "timestamp_out_of_tolerance",
        ),
        (
            "stripe, malformed",
            stripe,
            vec![("stripe-signature", "v1=abc".to_owned())],
            body,
            "invalid_signature",
        ),
        (
            "github, no signature",
            github,
            vec![github_event.clone()],
            body,
            "invalid_signature",
        ),
        (
            "github, the sha1 header only",
            github,
            vec![
                github_event.clone(),
                ("x-hub-signature", "sha1=0123".to_owned()),
            ],
            body,
            "invalid_signature",
        ),
    ];
    for (case, provider_id, headers, sent, code) in cases {
        let (status, answer) = deliver(&sandbox, provider_id, &headers, sent.as_bytes()).await;
        assert_eq!(status, 401, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
    }
    assert_eq!(stored_events(&sandbox).await, 0, "nothing stored");

    // The same delivery, correctly signed, goes through: the refusals were the signatures'.
    let (status, answer) = deliver(&sandbox, standard, &good, body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    eventually("the webhook", Duration::from_secs(30), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_delivery_without_json_or_a_usable_type_is_refused_and_stores_nothing() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let created = provider(
        &sandbox,
        &tenant,
        json!({"name": "acme", "scheme": "hmac_sha256", "secret": PLAIN_SECRET,
               "event_type": {"field": "meta.type"}, "type_prefix": "acme."}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let signed = |body: &str| {
        vec![(
            "x-signature",
            hmac_hex(PLAIN_SECRET.as_bytes(), &[body.as_bytes()]),
        )]
    };
    let deep_body = format!(
        r#"{{"meta":{{"type":"x"}},"deep":{}{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    let cases = [
        ("not JSON", "type=push", 400, "invalid_json"),
        ("no type", r#"{"meta":{}}"#, 422, "event_type_missing"),
        (
            "type not a string",
            r#"{"meta":{"type":7}}"#,
            422,
            "event_type_missing",
        ),
        (
            "not an event type",
            r#"{"meta":{"type":"order shipped"}}"#,
            422,
            "invalid_event_type",
        ),
        // JSON that could not be stored or read back (the body is the event's data).
        (
            "nested past the bound",
            deep_body.as_str(),
            422,
            "json_too_deep",
        ),
        (
            "a number past a float",
            r#"{"meta":{"type":"x"},"n":1e400}"#,
            422,
            "number_out_of_range",
        ),
        (
            "a lone surrogate",
            r#"{"meta":{"type":"x"},"s":"\udc00"}"#,
            422,
            "lone_surrogate",
        ),
    ];
    for (case, body, status, code) in cases {
        let (got, answer) = deliver(&sandbox, id, &signed(body), body.as_bytes()).await;
        assert_eq!(got, status, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
    }
    // No provider behind the id, or no id at all: nothing to verify with.
    let body = r#"{"meta":{"type":"x"}}"#;
    let unknown = ProviderId::new().to_string();
    for provider_id in [unknown.as_str(), "act_01", "nonsense"] {
        let (status, answer) = deliver(&sandbox, provider_id, &signed(body), body.as_bytes()).await;
        assert_eq!(status, 404, "{provider_id}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    assert_eq!(stored_events(&sandbox).await, 0, "nothing stored");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_belong_to_their_tenant() {
    let sandbox = Sandbox::start().await;
    let owner = sandbox.tenant().await;
    let other = sandbox.tenant().await;
    let spec = json!({"name": "github", "scheme": "github", "secret": PLAIN_SECRET,
                      "event_type": {"header": "x-github-event"}});
    let created = provider(&sandbox, &owner, spec.clone()).await;
    assert_eq!(created["secret"], PLAIN_SECRET);
    let id = created["id"].as_str().expect("id");
    let path = format!("/v1/providers/{id}");

    let (status, shown) = sandbox
        .call(Method::GET, &path, Some(&owner.key), None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["secret"], "…body", "masked after creation");
    assert_eq!(shown["name"], "github");
    assert_eq!(shown["event_type"], json!({"header": "x-github-event"}));
    let (_, listed) = sandbox
        .call(Method::GET, "/v1/providers", Some(&owner.key), None)
        .await;
    assert_eq!(listed, json!({"data": [shown]}));

    let (status, taken) = sandbox
        .call(
            Method::POST,
            "/v1/providers",
            Some(&owner.key),
            Some(spec.clone()),
        )
        .await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["error"]["code"], "name_taken");
    // Names are per tenant: the other tenant may use the same one.
    provider(&sandbox, &other, spec).await;

    for method in [Method::GET, Method::DELETE] {
        let (status, answer) = sandbox
            .call(method.clone(), &path, Some(&other.key), None)
            .await;
        assert_eq!(status, 404, "{method}: {answer}");
    }
    let (_, theirs) = sandbox
        .call(Method::GET, "/v1/providers", Some(&other.key), None)
        .await;
    let theirs = theirs["data"].as_array().expect("a list");
    assert_eq!(theirs.len(), 1, "their own provider only");
    assert_ne!(theirs[0]["id"], id);

    let (status, deleted) = sandbox
        .call(Method::DELETE, &path, Some(&owner.key), None)
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["id"], id);
    assert_eq!(deleted["secret"], "…body");
    let (status, _) = sandbox
        .call(Method::GET, &path, Some(&owner.key), None)
        .await;
    assert_eq!(status, 404);
    let body = br#"{}"#;
    let signature = format!("sha256={}", hmac_hex(PLAIN_SECRET.as_bytes(), &[body]));
    let headers = [
        ("x-hub-signature-256", signature),
        ("x-github-event", "push".to_owned()),
    ];
    let (status, _) = deliver(&sandbox, id, &headers, body).await;
    assert_eq!(status, 404, "a deleted provider's deliveries go nowhere");
    let (status, _) = sandbox.call(Method::GET, "/v1/providers", None, None).await;
    assert_eq!(status, 401, "managing providers takes a key");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_provider_is_refused_naming_its_field() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let base = json!({"name": "p", "scheme": "stripe", "secret": PLAIN_SECRET,
                      "event_type": {"field": "type"}});
    let cases = [
        ("scheme", json!("svix")),
        ("secret", json!("")),
        ("tolerance_s", json!(86_401)),
        ("event_type", json!({"body": "type"})),
        ("type_prefix", json!("a..")),
        ("signature_header", json!("x-sig")),
        ("colour", json!("blue")),
    ];
    for (field, value) in cases {
        let mut spec = base.clone();
        spec[field] = value;
        let (status, answer) = sandbox
            .call(
                Method::POST,
                "/v1/providers",
                Some(&tenant.key),
                Some(spec.clone()),
            )
            .await;
        assert_eq!(status, 422, "{spec}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_provider", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with(field), "{spec}: {message}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM providers")
        .fetch_one(sandbox.store.pool())
        .await
        .expect("count");
    assert_eq!(rows, 0);
    sandbox.stop().await;
}
