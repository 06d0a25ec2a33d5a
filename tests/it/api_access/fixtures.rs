//! What tenant A owns for the access tests: one of everything an operation can name, shared by
//! the rows that only read or harmlessly change it, and fresh objects for the rows that
//! consume what they name (delete, cancel, restore, revoke), so that no row depends on the
//! order of the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_ingest::api::Operation;
use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

/// The secret of A's providers: the owner's column signs its hook with it.
pub const PROVIDER_SECRET: &str = "s3cret-s3cret-s3cret";

/// The type of the events the matrix sends; no action matches it, so sending one starts
/// nothing that could change another row's fixtures.
pub const SENT_TYPE: &str = "matrix.sent";

/// The type the matrix's own actions listen for, which no request sends.
pub const NEVER_SENT_TYPE: &str = "matrix.never";

/// A retry by filter that selects nothing: a bulk retry running in the scheduler must not
/// reopen the cancelled execution another row is about to retry.
pub fn selects_nothing() -> Value {
    json!({"status": "cancelled", "event_id": "no-such-event"})
}

/// A name no other request of the test has used (names are unique within a tenant, and
/// several columns create in the same tenant).
pub fn unique(prefix: &str) -> String {
    static SERIAL: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", SERIAL.fetch_add(1, Ordering::Relaxed))
}

/// A one-off delivery due tomorrow: pending for the whole test, so nothing is sent.
pub fn delivery_tomorrow(url: &str) -> Value {
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    json!({"url": url, "payload": {"from": "the access matrix"},
           "scheduled_at": tomorrow.to_rfc3339()})
}

/// Something a row consumes, made for that row alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    Action,
    DisabledAction,
    DeletedAction,
    /// Waiting for its first attempt.
    PendingExecution,
    /// Finished (cancelled), so it can be retried.
    FinishedExecution,
    Provider,
    ApiKey,
    BulkRetry,
    Secret,
}

/// Ids of everything tenant A owns, and the stranger (tenant B) who must not reach them.
pub struct Owned {
    pub tenant: TestTenant,
    pub stranger: TestTenant,
    pub ids: HashMap<&'static str, String>,
    hook_url: String,
}

impl Owned {
    /// The path of `operation` with A's ids in it; `fresh` is what its last parameter names
    /// when the row consumes it.
    pub fn path(&self, operation: &Operation, fresh: Option<&str>) -> String {
        let resource = operation.path.split('/').nth(2).unwrap_or_default();
        let parameters: Vec<&str> = operation.path_parameters().collect();
        let mut path = operation.path.to_owned();
        for (i, parameter) in parameters.iter().enumerate() {
            let value = match fresh {
                Some(id) if i + 1 == parameters.len() => id.to_owned(),
                _ => self.ids[shared_id(resource, parameter, operation)].clone(),
            };
            path = path.replace(&format!("{{{parameter}}}"), &value);
        }
        path
    }

    async fn call(
        &self,
        sandbox: &Sandbox,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = sandbox
            .call(method.clone(), path, Some(&self.tenant.key), body)
            .await;
        assert!(
            (200..300).contains(&status),
            "fixture {method} {path}: {status} {answer}"
        );
        answer
    }

    /// Makes `what` in A's tenant and returns its id.
    pub async fn fresh(&self, sandbox: &Sandbox, what: Fresh) -> String {
        let answer = match what {
            Fresh::Action | Fresh::DisabledAction | Fresh::DeletedAction => {
                let mut spec =
                    webhook_action(&unique("fresh"), NEVER_SENT_TYPE, &self.hook_url, json!({}));
                spec["enabled"] = json!(what != Fresh::DisabledAction);
                let action = self
                    .call(sandbox, Method::POST, "/v1/actions", Some(spec))
                    .await;
                if what == Fresh::DeletedAction {
                    let path = format!("/v1/actions/{}", id_of(&action));
                    self.call(sandbox, Method::DELETE, &path, None).await;
                }
                action
            }
            Fresh::PendingExecution | Fresh::FinishedExecution => {
                let body = delivery_tomorrow(&self.hook_url);
                let delivery = self
                    .call(sandbox, Method::POST, "/v1/deliveries", Some(body))
                    .await;
                if what == Fresh::FinishedExecution {
                    let path = format!("/v1/executions/{}/cancel", id_of(&delivery));
                    self.call(sandbox, Method::POST, &path, None).await;
                }
                delivery
            }
            Fresh::Provider => {
                let body = provider(&unique("fresh"));
                self.call(sandbox, Method::POST, "/v1/providers", Some(body))
                    .await
            }
            Fresh::ApiKey => {
                let path = format!("/v1/tenants/{}/keys", self.tenant.id);
                let (status, key) = sandbox
                    .call(Method::POST, &path, Some(sandbox.admin_token()), None)
                    .await;
                assert_eq!(status, 201, "fixture key: {key}");
                key
            }
            Fresh::BulkRetry => {
                let body = selects_nothing();
                self.call(sandbox, Method::POST, "/v1/executions/retry", Some(body))
                    .await
            }
            Fresh::Secret => {
                let name = unique("fresh").replace('-', "_");
                let path = format!("/v1/secrets/{name}");
                let body = json!({"value": "a fresh secret"});
                self.call(sandbox, Method::PUT, &path, Some(body)).await;
                json!({"id": name})
            }
        };
        id_of(&answer)
    }
}

/// Which of A's shared objects a path parameter names.
fn shared_id(resource: &str, parameter: &str, operation: &Operation) -> &'static str {
    match (resource, parameter) {
        ("tenants", "id") => "tenant",
        ("events", _) => "event",
        ("actions", _) => "action",
        ("executions", _) => "execution",
        ("bulk-retries", _) => "bulk_retry",
        ("endpoints", _) => "endpoint",
        ("providers" | "hooks", _) => "provider",
        ("secrets", _) => "secret",
        _ => panic!(
            "{}: no shared object for {{{parameter}}}; give its row a fresh one",
            operation.path
        ),
    }
}

fn id_of(answer: &Value) -> String {
    answer["id"].as_str().expect("an id").to_owned()
}

/// A GitHub-style provider whose event type is in the `x-github-event` header.
pub fn provider(name: &str) -> Value {
    json!({"name": name, "scheme": "github", "secret": PROVIDER_SECRET,
           "event_type": {"header": "x-github-event"}})
}

/// A tenant with one of everything, and a stranger.
pub async fn owned(sandbox: &Sandbox, receiver: &Receiver) -> Owned {
    let tenant = sandbox.tenant().await;
    let stranger = sandbox.tenant().await;
    let key = Some(tenant.key.as_str());
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
    ids.insert("action", id_of(&action));
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
    ids.insert("execution", id_of(&executions[0]));
    let endpoint = eventually("the endpoint's record", Duration::from_secs(20), || async {
        let (_, list) = sandbox.call(Method::GET, "/v1/endpoints", key, None).await;
        list["data"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    ids.insert("endpoint", endpoint);
    let (status, bulk) = sandbox
        .call(
            Method::POST,
            "/v1/executions/retry",
            key,
            Some(selects_nothing()),
        )
        .await;
    assert_eq!(status, 202, "{bulk}");
    ids.insert("bulk_retry", id_of(&bulk));
    let (status, provider) = sandbox
        .call(Method::POST, "/v1/providers", key, Some(provider("owned")))
        .await;
    assert_eq!(status, 201, "{provider}");
    ids.insert("provider", id_of(&provider));
    for owner in [&tenant, &stranger] {
        let (status, secret) = sandbox
            .call(
                Method::PUT,
                "/v1/secrets/owned_secret",
                Some(&owner.key),
                Some(json!({"value": "owned"})),
            )
            .await;
        assert_eq!(status, 201, "{secret}");
    }
    ids.insert("secret", "owned_secret".to_owned());
    ids.insert("tenant", tenant.id.clone());
    Owned {
        tenant,
        stranger,
        ids,
        hook_url: receiver.url("/fresh"),
    }
}
