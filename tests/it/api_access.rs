//! Who may call what: every operation of the API (walked from the same table that builds the
//! router) with no key, a wrong key, the admin token alone, the admin token acting for the
//! owner (`Herald-Tenant`), another tenant's key and the right key; and the published OpenAPI document, served as committed and valid by an independent
//! validator.

use std::collections::HashMap;
use std::time::Duration;

use herald_ingest::api::{Access, OPERATIONS, Operation};
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{run_python, webhook_action};

/// The credentials of one column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    WrongKey,
    Admin,
    AdminForOwner,
    OtherTenant,
    Owner,
}

/// Ids of everything tenant A owns, by the operation that names them.
struct Owned {
    tenant: TestTenant,
    stranger: TestTenant,
    ids: HashMap<&'static str, String>,
}

impl Owned {
    /// The path of `operation` with A's ids in it.
    fn path(&self, operation: &Operation) -> String {
        let resource = operation.path.split('/').nth(2).unwrap_or_default();
        let mut path = operation.path.to_owned();
        for parameter in operation.path_parameters() {
            let key = match (resource, parameter, operation.name) {
                (_, "key_id", _) => "key",
                ("providers", _, "deleteProvider") => "spare_provider",
                ("hooks", _, _) => "provider",
                (other, _, _) => match other {
                    "events" => "event",
                    "actions" => "action",
                    "executions" => "execution",
                    "bulk-retries" => "bulk_retry",
                    "endpoints" => "endpoint",
                    "providers" => "provider",
                    "tenants" => "tenant",
                    unknown => panic!("no id for {unknown} in {}", operation.path),
                },
            };
            let value = &self.ids[key];
            path = path.replace(&format!("{{{parameter}}}"), value);
        }
        path
    }

    fn token(&self, caller: Caller, admin: &str) -> Option<String> {
        match caller {
            Caller::Nobody => None,
            Caller::WrongKey => Some("hk_0000000000000000000000000000000000000000".into()),
            Caller::Admin | Caller::AdminForOwner => Some(admin.into()),
            Caller::OtherTenant => Some(self.stranger.key.clone()),
            Caller::Owner => Some(self.tenant.key.clone()),
        }
    }
}

/// Sends one request of the matrix; a stream of server-sent events is read up to its first
/// event, whose data is the answer.
async fn send(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    token: Option<&str>,
    acting_for: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, sandbox.api_url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(tenant) = acting_for {
        request = request.header("herald-tenant", tenant);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let mut response = request.send().await.expect("ingest reachable");
    let status = response.status().as_u16();
    let streamed = response
        .headers()
        .get("content-type")
        .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
    let text = if streamed {
        let mut text = String::new();
        while !text.contains("\n\n") {
            match tokio::time::timeout(Duration::from_secs(10), response.chunk()).await {
                Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                other => panic!("{path}: no first event ({other:?}) after {text:?}"),
            }
        }
        text.lines()
            .find_map(|line| line.strip_prefix("data:"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    } else {
        response.text().await.unwrap_or_default()
    };
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn owned(sandbox: &Sandbox, receiver: &Receiver) -> Owned {
    let tenant = sandbox.tenant().await;
    let stranger = sandbox.tenant().await;
    let key = |tenant: &TestTenant| Some(tenant.key.clone());
    let mut ids = HashMap::new();
    let action = sandbox
        .action(
            &tenant,
            webhook_action(
                "owned",
                "thing.happened",
                &receiver.url("/"),
                json!({"max_attempts": 1}),
            ),
        )
        .await;
    ids.insert("action", action["id"].as_str().expect("id").to_owned());
    // A failure gives the destination an endpoint record (a circuit with a failure in it).
    receiver.script([Reply::status(500)]);
    let event = sandbox
        .event(
            &tenant,
            json!({"id": "owned-event", "type": "thing.happened"}),
        )
        .await;
    let executions = sandbox
        .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
        .await;
    ids.insert("event", event);
    ids.insert(
        "execution",
        executions[0]["id"].as_str().expect("id").to_owned(),
    );
    let endpoint = eventually("the endpoint's record", Duration::from_secs(20), || async {
        let (_, list) = sandbox
            .call(Method::GET, "/v1/endpoints", key(&tenant).as_deref(), None)
            .await;
        list["data"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    ids.insert("endpoint", endpoint);
    let (status, bulk) = sandbox
        .call(
            Method::POST,
            "/v1/executions/retry",
            key(&tenant).as_deref(),
            Some(json!({"status": "cancelled"})),
        )
        .await;
    assert_eq!(status, 202, "{bulk}");
    ids.insert("bulk_retry", bulk["id"].as_str().expect("id").to_owned());
    for (name, slot) in [("provider-a", "provider"), ("provider-b", "spare_provider")] {
        let (status, provider) = sandbox
            .call(
                Method::POST,
                "/v1/providers",
                key(&tenant).as_deref(),
                Some(
                    json!({"name": name, "scheme": "github", "secret": "s3cret-s3cret-s3cret",
                            "event_type": {"header": "x-github-event"}}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{provider}");
        ids.insert(slot, provider["id"].as_str().expect("id").to_owned());
    }
    let (status, spare_key) = sandbox
        .call(
            Method::POST,
            &format!("/v1/tenants/{}/keys", tenant.id),
            Some(sandbox.admin_token()),
            None,
        )
        .await;
    assert_eq!(status, 201, "{spare_key}");
    ids.insert("key", spare_key["id"].as_str().expect("id").to_owned());
    ids.insert("tenant", tenant.id.clone());
    Owned {
        tenant,
        stranger,
        ids,
    }
}

/// What `caller` must get from `operation`: an exact status, or "let in" (anything but
/// 401, 403, 404 and 405).
fn expected(operation: &Operation, caller: Caller) -> Option<u16> {
    let names_an_id = operation.path.contains('{');
    match (operation.access, caller) {
        (Access::Public, _) => Some(200),
        // A bearer key means nothing to a provider's hook: only the signature counts, and
        // these requests carry none.
        (Access::Signed, _) => Some(401),
        (_, Caller::Nobody | Caller::WrongKey) => Some(401),
        (Access::Any, _) => Some(200),
        // The admin token alone names no tenant.
        (Access::Tenant, Caller::Admin) => Some(403),
        (Access::Tenant, Caller::AdminForOwner) => None,
        (Access::Admin, Caller::OtherTenant | Caller::Owner) => Some(403),
        (Access::Admin, Caller::Admin | Caller::AdminForOwner) => None,
        (Access::Tenant, Caller::OtherTenant) if names_an_id => Some(404),
        (Access::Tenant, Caller::OtherTenant | Caller::Owner) => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_lets_in_exactly_who_it_should() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let owned_by_key = owned(&sandbox, &receiver).await;
    // The admin token acting for a tenant changes what it touches too: it gets a tenant and
    // things of its own.
    let owned_for_admin = owned(&sandbox, &receiver).await;
    // The owner's column goes last: some of its calls change what they touch.
    let columns = [
        Caller::Nobody,
        Caller::WrongKey,
        Caller::Admin,
        Caller::AdminForOwner,
        Caller::OtherTenant,
        Caller::Owner,
    ];
    let mut checked = 0;
    for caller in columns {
        let (owned, acting_for) = match caller {
            Caller::AdminForOwner => (&owned_for_admin, Some(owned_for_admin.tenant.id.as_str())),
            _ => (&owned_by_key, None),
        };
        for operation in OPERATIONS {
            let path = owned.path(operation);
            let token = owned.token(caller, sandbox.admin_token());
            let body = operation.body.map(|_| match operation.name {
                // A body that reads, so that what is checked is the id, not the body.
                "testAction" => json!({"event": {"type": "thing.happened"}}),
                _ => json!({}),
            });
            let (status, answer) = send(
                &sandbox,
                operation.method.clone(),
                &path,
                token.as_deref(),
                acting_for,
                body,
            )
            .await;
            let what = format!("{caller:?} {} {path}: {status} {answer}", operation.method);
            match expected(operation, caller) {
                Some(want) => assert_eq!(status, want, "{what}"),
                None => assert!(![401, 403, 404, 405].contains(&status), "{what}"),
            }
            if status >= 400 {
                assert!(answer["error"]["code"].is_string(), "error shape: {what}");
            }
            // Another tenant's listings never show A's ids.
            if caller == Caller::OtherTenant && operation.method == Method::GET {
                let text = answer.to_string();
                for id in owned.ids.values().filter(|id| id.len() > 12) {
                    assert!(!text.contains(id.as_str()), "{what} shows {id}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, OPERATIONS.len() * columns.len());
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_openapi_document_is_the_committed_one_and_valid() {
    let sandbox = Sandbox::start().await;
    let (status, served) = sandbox.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi.json")).expect("JSON");
    assert_eq!(
        served, committed,
        "run `cargo xtask openapi` and commit openapi.json"
    );
    let documented: Vec<String> = served["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("methods")
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    assert_eq!(documented.len(), OPERATIONS.len());
    let output = run_python(
        concat!(env!("CARGO_MANIFEST_DIR"), "/python/validate_openapi.py"),
        &served,
    );
    assert!(
        output.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_shown_once_stored_hashed_and_revoked_at_once() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let admin = Some(sandbox.admin_token());
    let keys = format!("/v1/tenants/{}/keys", tenant.id);
    let (status, created) = sandbox
        .call(Method::POST, &keys, admin, Some(json!({"name": "ci"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().expect("the key, once").to_owned();
    let (status, _) = sandbox
        .call(Method::GET, "/v1/stats", Some(&key), None)
        .await;
    assert_eq!(status, 200);

    // Never shown again, and not stored as given.
    let (_, shown) = sandbox
        .call(
            Method::GET,
            &format!("/v1/tenants/{}", tenant.id),
            admin,
            None,
        )
        .await;
    assert!(!shown.to_string().contains(&key), "{shown}");
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_all(sandbox.store.pool())
        .await
        .expect("api keys");
    assert!(
        rows.iter().all(|row| !row.contains(&key)),
        "a key stored in the clear"
    );

    let revoke = format!("{keys}/{}", created["id"].as_str().expect("key id"));
    let (status, _) = sandbox.call(Method::DELETE, &revoke, admin, None).await;
    assert_eq!(status, 204);
    let (status, answer) = sandbox
        .call(Method::GET, "/v1/stats", Some(&key), None)
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // The tenant's other key still works.
    let (status, _) = sandbox
        .call(Method::GET, "/v1/stats", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200);
    sandbox.stop().await;
}
