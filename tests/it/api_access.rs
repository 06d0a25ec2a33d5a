//! Who may call what: every operation of the API (walked from the same table that builds the
//! router), each sent a request that succeeds for its owner, with no key, a wrong key, the
//! admin token alone, the admin token acting for the owner (`Herald-Tenant`), another
//! tenant's key (alone, and naming the owner in `Herald-Tenant`) and the right key; and the
//! published OpenAPI document, served as committed and valid by an independent validator,
//! and the successful answers valid by its response schemas.
//! Beside them: the routes outside the API, and the walls between tenants.

mod fixtures;
mod outside_the_api;
mod requests;
mod response_schemas;
mod tenant_walls;

use std::time::Duration;

use herald_ingest::api::{Access, OPERATIONS, Operation};
use herald_tests::{Receiver, Sandbox};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use self::fixtures::{Owned, PROVIDER_SECRET, owned};
use self::requests::valid_request;
use self::response_schemas::Answers;
use crate::support::run_python;

/// The credentials of one column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    WrongKey,
    Admin,
    AdminForOwner,
    OtherTenant,
    /// Another tenant's key with the owner's id in `Herald-Tenant`, which only the admin
    /// token may use.
    OtherTenantNamingOwner,
    Owner,
}

impl Caller {
    const ALL: [Caller; 7] = [
        Caller::Nobody,
        Caller::WrongKey,
        Caller::Admin,
        Caller::AdminForOwner,
        Caller::OtherTenant,
        Caller::OtherTenantNamingOwner,
        Caller::Owner,
    ];

    fn is_other_tenant(self) -> bool {
        matches!(self, Caller::OtherTenant | Caller::OtherTenantNamingOwner)
    }

    fn token(self, owned: &Owned, admin: &str) -> Option<String> {
        match self {
            Caller::Nobody => None,
            Caller::WrongKey => Some("hk_0000000000000000000000000000000000000000".into()),
            Caller::Admin | Caller::AdminForOwner => Some(admin.into()),
            Caller::OtherTenant | Caller::OtherTenantNamingOwner => {
                Some(owned.stranger.key.clone())
            }
            Caller::Owner => Some(owned.tenant.key.clone()),
        }
    }

    fn acting_for(self, owned: &Owned) -> Option<&str> {
        matches!(self, Caller::AdminForOwner | Caller::OtherTenantNamingOwner)
            .then_some(owned.tenant.id.as_str())
    }

    /// For a provider's hook the credential is the signature: the owner's column signs with
    /// the provider's secret, the wrong and the other tenant's with another one, the rest not
    /// at all (a bearer token means nothing there).
    fn signing_secret(self) -> Option<&'static str> {
        match self {
            Caller::Owner => Some(PROVIDER_SECRET),
            Caller::WrongKey | Caller::OtherTenant | Caller::OtherTenantNamingOwner => {
                Some("not-the-providers-secret")
            }
            Caller::Nobody | Caller::Admin | Caller::AdminForOwner => None,
        }
    }
}

/// The status `caller` must get from `operation`'s valid request.
fn expected(operation: &Operation, caller: Caller) -> u16 {
    let success = operation.success.0;
    let names_an_id = operation.path.contains('{');
    match (operation.access, caller) {
        (Access::Public, _) => success,
        (Access::Signed, Caller::Owner) => success,
        (Access::Signed, _) => 401,
        (_, Caller::Nobody | Caller::WrongKey) => 401,
        (Access::Any, _) => success,
        // The admin token alone names no tenant.
        (Access::Tenant, Caller::Admin) => 403,
        (Access::Tenant, Caller::AdminForOwner | Caller::Owner) => success,
        (Access::Admin, Caller::Admin | Caller::AdminForOwner) => success,
        (Access::Admin, _) => 403,
        // Another tenant's key acts for its own tenant whatever it names: the owner's ids are
        // unknown there, and the rest succeeds in its own tenant.
        // A secret's name is in the caller's own namespace: another tenant's PUT replaces a
        // secret of its own (the stranger has one of the same name).
        (Access::Tenant, _) if operation.name == "putSecret" => success,
        (Access::Tenant, _) if names_an_id => 404,
        (Access::Tenant, _) => success,
    }
}

/// The column whose answers are checked against the documented schemas: the admin token's
/// for tenant management (the owner's key is refused there), the owner's for the rest.
fn rightful(operation: &Operation) -> Caller {
    match operation.access {
        Access::Admin => Caller::Admin,
        _ => Caller::Owner,
    }
}

/// The operations the matrix has no valid request for, or whose request leaves out the body
/// the operation documents, or sends a query parameter it does not document.
fn operations_without_a_valid_request() -> Vec<&'static str> {
    OPERATIONS
        .iter()
        .filter(|operation| match valid_request(operation.name) {
            None => true,
            Some(request) => {
                let undocumented = request
                    .query
                    .split('&')
                    .filter(|pair| !pair.is_empty())
                    .filter_map(|pair| pair.split('=').next())
                    .any(|name| !operation.query.iter().any(|(known, _)| *known == name));
                (operation.body.is_some() && request.body.is_none()) || undocumented
            }
        })
        .map(|operation| operation.name)
        .collect()
}

#[test]
fn every_operation_has_a_valid_request() {
    let missing = operations_without_a_valid_request();
    assert!(
        missing.is_empty(),
        "give these operations a valid request in tests/it/api_access/requests.rs: {missing:?}"
    );
}

/// HMAC-SHA256 of `body` in the `X-Hub-Signature-256` form, computed here rather than by
/// Herald's code.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Sends one request of the matrix; a stream of server-sent events is read up to its first
/// event, whose data is the answer.
async fn send(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, sandbox.api_url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
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

/// Sends `operation`'s valid request as `caller`, on `owned`'s objects; returns the status, the
/// answer and a description for failures.
async fn call(
    sandbox: &Sandbox,
    owned: &Owned,
    operation: &Operation,
    caller: Caller,
) -> (u16, Value, String) {
    let request = valid_request(operation.name).expect("every operation has a request");
    let fresh = match request.fresh {
        Some(what) => Some(owned.fresh(sandbox, what).await),
        None => None,
    };
    let mut path = owned.path(operation, fresh.as_deref());
    if !request.query.is_empty() {
        path = format!("{path}?{}", request.query);
    }
    let body = request
        .body
        .map(|body| serde_json::to_vec(&body).expect("JSON"));
    let mut headers: Vec<(&str, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    if let Some(token) = caller.token(owned, sandbox.admin_token()) {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    if let Some(tenant) = caller.acting_for(owned) {
        headers.push(("herald-tenant", tenant.to_owned()));
    }
    if operation.access == Access::Signed
        && let Some(secret) = caller.signing_secret()
    {
        let signed = body.as_deref().unwrap_or_default();
        headers.push(("x-hub-signature-256", github_signature(secret, signed)));
    }
    let (status, answer) = send(sandbox, operation.method.clone(), &path, &headers, body).await;
    let what = format!("{caller:?} {} {path}: {status} {answer}", operation.method);
    (status, answer, what)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_lets_in_exactly_who_it_should() {
    let missing = operations_without_a_valid_request();
    assert!(missing.is_empty(), "no valid request for {missing:?}");
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let owned_by_key = owned(&sandbox, &receiver).await;
    // The admin token acting for a tenant changes what it touches too: it gets a tenant and
    // things of its own.
    let owned_for_admin = owned(&sandbox, &receiver).await;
    let mut checked = 0;
    let mut answers = Answers::default();
    for caller in Caller::ALL {
        let owned = match caller {
            Caller::AdminForOwner => &owned_for_admin,
            _ => &owned_by_key,
        };
        for operation in OPERATIONS {
            let (status, answer, what) = call(&sandbox, owned, operation, caller).await;
            assert!(status < 500, "a server error: {what}");
            assert_eq!(status, expected(operation, caller), "{what}");
            if status >= 400 {
                assert!(answer["error"]["code"].is_string(), "error shape: {what}");
            }
            if caller == rightful(operation) {
                answers.keep(operation, status, &answer);
            }
            // Another tenant's answers never show A's ids.
            if caller.is_other_tenant() && operation.method == Method::GET {
                let text = answer.to_string();
                for id in owned.ids.values().filter(|id| id.len() > 12) {
                    assert!(!text.contains(id.as_str()), "{what} shows {id}");
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, OPERATIONS.len() * Caller::ALL.len());
    answers.check();
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
