//! Secrets: a tenant's store of values for templates, write-only through the API; and what is
//! secret (secret values, handlers with their signing secrets and credentials, providers'
//! secrets) sealed at rest, sealed by `migrate` when stored before sealing began, and sealed
//! again under a new key by `reencrypt`.

use std::time::Duration;

use herald_common::config::ServiceName;
use herald_tests::sandbox::{ENCRYPTION_KEY, TestTenant};
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::{SECRET, verify_with_reference_library, webhook_action};

/// A key to rotate to (32 bytes of 0x43).
const NEW_KEY: &str = "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M=";
const CREDENTIAL: &str = "Bearer crm-credential-7f3a9c";
const SECRET_VALUE: &str = "xoxb-secret-value-1b2c3d";
const PROVIDER_SECRET: &str = "whsec_provider_0123456789abcdef";

async fn put_secret(sandbox: &Sandbox, key: &str, name: &str, body: Value) -> (u16, Value) {
    sandbox
        .call(
            Method::PUT,
            &format!("/v1/secrets/{name}"),
            Some(key),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_written_listed_and_deleted_but_never_read_back() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let other = sandbox.tenant().await;

    let (status, created) = put_secret(
        &sandbox,
        &tenant.key,
        "crm_token",
        json!({"value": SECRET_VALUE}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "crm_token");
    let (status, replaced) =
        put_secret(&sandbox, &tenant.key, "crm_token", json!({"value": "v2"})).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_ne!(replaced["updated_at"], created["updated_at"]);

    let (status, listed) = sandbox
        .call(Method::GET, "/v1/secrets", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["data"][0]["name"], "crm_token");
    for answer in [&created, &replaced, &listed] {
        let text = answer.to_string();
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains("\"v2\""),
            "{text}"
        );
    }
    let (_, others) = sandbox
        .call(Method::GET, "/v1/secrets", Some(&other.key), None)
        .await;
    assert_eq!(
        others["data"],
        json!([]),
        "another tenant sees none of them"
    );
    let (status, _) = sandbox
        .call(
            Method::DELETE,
            "/v1/secrets/crm_token",
            Some(&other.key),
            None,
        )
        .await;
    assert_eq!(status, 404, "nor deletes them");

    let refused = [
        ("Crm-Token", json!({"value": "x"}), "name"),
        (&"a".repeat(65), json!({"value": "x"}), "name"),
        ("ok", json!({"value": ""}), "value"),
        ("ok", json!({"value": "x".repeat(16 * 1024 + 1)}), "value"),
    ];
    for (name, body, field) in refused {
        let (status, error) = put_secret(&sandbox, &tenant.key, name, body).await;
        assert_eq!(status, 422, "{name}: {error}");
        assert_eq!(error["error"]["code"], "invalid_secret");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{error}"
        );
    }
    let (status, error) = put_secret(
        &sandbox,
        &tenant.key,
        "ok",
        json!({"value": "x", "note": 1}),
    )
    .await;
    assert_eq!(status, 400, "{error}");

    let (status, _) = sandbox
        .call(
            Method::DELETE,
            "/v1/secrets/crm_token",
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (_, listed) = sandbox
        .call(Method::GET, "/v1/secrets", Some(&tenant.key), None)
        .await;
    assert_eq!(listed["data"], json!([]));
    sandbox.stop().await;
}

/// An action with a credential header and the known signing secret, a provider and a secret.
async fn secret_things(sandbox: &Sandbox, tenant: &TestTenant, url: &str) -> String {
    let mut action = webhook_action("sealed", "order.paid", url, json!({"max_attempts": 1}));
    action["handler"]["headers"] = json!({"authorization": CREDENTIAL});
    let action = sandbox.action(tenant, action).await;
    let (status, provider) = sandbox
        .call(
            Method::POST,
            "/v1/providers",
            Some(&tenant.key),
            Some(
                json!({"name": "stripe", "scheme": "stripe", "secret": PROVIDER_SECRET,
                        "event_type": {"field": "type"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{provider}");
    let (status, _) = put_secret(
        sandbox,
        &tenant.key,
        "crm_token",
        json!({"value": SECRET_VALUE}),
    )
    .await;
    assert_eq!(status, 201);
    action["id"].as_str().expect("id").to_owned()
}

/// The three sealed columns as the database holds them, as text.
async fn stored(sandbox: &Sandbox) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT handler::text AS v FROM actions
         UNION ALL SELECT secret FROM providers
         UNION ALL SELECT value FROM secrets",
    )
    .fetch_all(sandbox.store.pool())
    .await
    .expect("read");
    rows.iter().map(|r| r.get::<String, _>("v")).collect()
}

fn assert_sealed(values: &[String]) {
    assert_eq!(values.len(), 3, "{values:?}");
    for value in values {
        let text = value.trim_matches('"');
        assert!(text.starts_with("sealed:v1:"), "{value}");
        for plain in [CREDENTIAL, SECRET, SECRET_VALUE, PROVIDER_SECRET] {
            assert!(!value.contains(plain), "{plain} in {value}");
        }
    }
}

/// The key id each stored value names.
fn key_ids(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| {
            v.trim_matches('"')
                .split(':')
                .nth(2)
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

fn run_ingest(sandbox: &Sandbox, command: &str, env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(herald_tests::env::bin_dir().join("herald-ingest"))
        .arg(command)
        .env_clear()
        .envs(sandbox.env())
        .envs(env.iter().copied())
        .output()
        .expect("run herald-ingest");
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_secret_is_sealed_at_rest_by_migrate_and_again_by_reencrypt() {
    let mut sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let id = secret_things(&sandbox, &tenant, &receiver.url("/hook")).await;
    assert_sealed(&stored(&sandbox).await);

    // Rows as a Herald before sealing wrote them: `migrate` seals them.
    let plain_handler = json!({"type": "webhook", "url": receiver.url("/hook"),
        "method": "POST", "headers": {"authorization": CREDENTIAL}, "timeout_ms": 5000,
        "secrets": [SECRET]});
    for (sql, value) in [
        (
            "UPDATE actions SET handler = $1::text::jsonb",
            plain_handler.to_string(),
        ),
        (
            "UPDATE providers SET secret = $1",
            PROVIDER_SECRET.to_owned(),
        ),
        ("UPDATE secrets SET value = $1", SECRET_VALUE.to_owned()),
    ] {
        sqlx::query(sql)
            .bind(value)
            .execute(sandbox.store.pool())
            .await
            .expect("write plain");
    }
    let (status, read) = sandbox
        .call(
            Method::GET,
            &format!("/v1/actions/{id}"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "plain rows are read as they are until sealed: {read}"
    );
    run_ingest(&sandbox, "migrate", &[]);
    let sealed = stored(&sandbox).await;
    assert_sealed(&sealed);
    let old_ids = key_ids(&sealed);

    // Rotation: the new key seals, the old one still opens; `reencrypt` moves everything.
    let printed = run_ingest(
        &sandbox,
        "reencrypt",
        &[
            ("HERALD_SECURITY__ENCRYPTION_KEY", NEW_KEY),
            ("HERALD_SECURITY__PREVIOUS_ENCRYPTION_KEYS", ENCRYPTION_KEY),
        ],
    );
    assert!(
        printed.contains("1 actions, 1 providers, 1 secrets"),
        "{printed}"
    );
    let resealed = stored(&sandbox).await;
    assert_sealed(&resealed);
    for (old, new) in old_ids.iter().zip(key_ids(&resealed)) {
        assert_ne!(old, &new, "sealed with the new key");
    }
    let printed = run_ingest(
        &sandbox,
        "reencrypt",
        &[("HERALD_SECURITY__ENCRYPTION_KEY", NEW_KEY)],
    );
    assert!(
        printed.contains("0 actions, 0 providers, 0 secrets"),
        "{printed}"
    );

    // Services with only the new key read and deliver everything.
    for service in [ServiceName::Ingest, ServiceName::Executor] {
        sandbox.stop_service(service).await;
    }
    sandbox.reconfigure(|config| config.security.encryption_key = NEW_KEY.into());
    for service in [ServiceName::Ingest, ServiceName::Executor] {
        sandbox.start_service(service).await;
    }
    let (status, action) = sandbox
        .call(
            Method::GET,
            &format!("/v1/actions/{id}"),
            Some(&tenant.key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{action}");
    assert_eq!(action["handler"]["headers"]["authorization"], "***");
    sandbox
        .event(&tenant, json!({"type": "order.paid", "data": {"n": 1}}))
        .await;
    let received = eventually("the webhook arrives", Duration::from_secs(20), || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(received.header("authorization"), CREDENTIAL);
    verify_with_reference_library(&received, SECRET).expect("signed with the stored secret");
    let (status, providers) = sandbox
        .call(Method::GET, "/v1/providers", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200, "{providers}");
    sandbox.stop().await;
}
