//! For every operation of the API, a request that succeeds for its owner. The matrix sends
//! the same request in every column, so what a column is refused for is its credential, never
//! its request; and an operation without a row here fails the test, so no route is added
//! without one.

use serde_json::{Value, json};

use super::fixtures::{
    Fresh, NEVER_SENT_TYPE, SENT_TYPE, delivery_tomorrow, provider, selects_nothing, unique,
};
use crate::support::webhook_action;

/// What the matrix sends to one operation, besides the credential of its column.
pub struct Request {
    /// The query string, without `?`.
    pub query: &'static str,
    pub body: Option<Value>,
    pub headers: &'static [(&'static str, &'static str)],
    /// What the path's last id names, made for this row alone when the row consumes it.
    pub fresh: Option<Fresh>,
}

/// Actions the matrix creates point here; none is ever triggered.
const NOWHERE: &str = "https://receiver.example/hook";

/// The request for the operation named `operation` (its OpenAPI `operationId`).
pub fn valid_request(operation: &str) -> Option<Request> {
    let body = |body: Value| Request {
        body: Some(body),
        ..plain()
    };
    let fresh = |what: Fresh| Request {
        fresh: Some(what),
        ..plain()
    };
    let query = |query: &'static str| Request { query, ..plain() };
    let action = || webhook_action(&unique("matrix"), NEVER_SENT_TYPE, NOWHERE, json!({}));
    Some(match operation {
        "sendEvent" => body(json!({"type": SENT_TYPE, "data": {"n": 1}})),
        "sendEventBatch" => body(json!([{"type": SENT_TYPE}, {"type": SENT_TYPE}])),
        "listEvents" => query("type=matrix.*&limit=10"),
        "getEvent" => plain(),
        "listActions" => query("include_deleted=true&limit=10"),
        "createAction" => body(action()),
        "applyActionSet" => body(json!({"actions": [action()]})),
        "getAction" => plain(),
        "updateAction" => body(json!({"description": "patched by the access matrix"})),
        "deleteAction" => fresh(Fresh::Action),
        "restoreAction" => fresh(Fresh::DeletedAction),
        "enableAction" => fresh(Fresh::DisabledAction),
        "disableAction" => fresh(Fresh::Action),
        "testAction" => body(json!({"event": {"type": "thing.happened"}})),
        "getActionStats" => query("since=2026-01-01T00:00:00Z&until=2026-01-31T00:00:00Z"),
        "getStats" => plain(),
        "getOverview" => plain(),
        "streamOverview" => plain(),
        "createDelivery" => body(delivery_tomorrow(NOWHERE)),
        "listExecutions" => query("status=failed&limit=10"),
        "exportExecutions" => query("status=failed"),
        "retryExecutions" => body(selects_nothing()),
        "getExecution" => plain(),
        "retryExecution" => fresh(Fresh::FinishedExecution),
        "cancelExecution" => fresh(Fresh::PendingExecution),
        "getBulkRetry" => plain(),
        "cancelBulkRetry" => fresh(Fresh::BulkRetry),
        "listEndpoints" => plain(),
        "resetEndpoint" => plain(),
        "listProviders" => plain(),
        "createProvider" => body(provider(&unique("matrix"))),
        "getProvider" => plain(),
        "deleteProvider" => fresh(Fresh::Provider),
        // Signed (or not) by the matrix, as its column calls for.
        "putSecret" => body(json!({"value": "made by the access matrix"})),
        "listSecrets" => plain(),
        "deleteSecret" => fresh(Fresh::Secret),
        "receiveProviderWebhook" => Request {
            body: Some(json!({"zen": "Design for failure."})),
            headers: &[("x-github-event", SENT_TYPE)],
            ..plain()
        },
        "createTenant" => body(json!({"name": "made by the access matrix"})),
        "listTenants" => plain(),
        "getTenant" => plain(),
        "createApiKey" => body(json!({"name": "made by the access matrix"})),
        "revokeApiKey" => fresh(Fresh::ApiKey),
        "whoami" => plain(),
        "getOpenApi" => plain(),
        _ => return None,
    })
}

fn plain() -> Request {
    Request {
        query: "",
        body: None,
        headers: &[],
        fresh: None,
    }
}
