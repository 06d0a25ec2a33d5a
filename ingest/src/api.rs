//! Every operation of the HTTP API in one table: the router is built from it, the OpenAPI
//! document is generated from it, and the authorization test walks it, so an API route cannot
//! exist without being documented and tested for access. Ingest serves only two other sets of
//! routes, merged in `service.rs` and not part of the API: the console (`/`, `/ui`, `/ui/`,
//! `/ui/{*path}`) and the operations endpoints (`/healthz`, `/readyz`, `/metrics`). They are
//! public and not in the OpenAPI document; `tests/it/api_access/outside_the_api.rs` lists them
//! with their answers and fails on a route path written in ingest's or common's code that is
//! neither in this table nor on its list.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use crate::routes::{
    action_edit, action_list, action_test, actions, bulk_retries, deliveries, endpoints, events,
    execution_export, executions, hooks, overview, providers, secrets, stats, tenants,
};
use crate::state::AppState;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A tenant's API key; sees only that tenant's data.
    Tenant,
    /// The admin token from `ingest.admin_token`.
    Admin,
    /// Either a tenant's key or the admin token.
    Any,
    /// Anyone holding the provider id, with a body signed by the provider's secret.
    Signed,
    /// Anyone.
    Public,
}

/// One operation: a method on a path, who may call it, and what it takes and answers.
#[derive(Debug)]
pub struct Operation {
    pub method: Method,
    /// axum's syntax: `{name}` for a path parameter.
    pub path: &'static str,
    pub access: Access,
    /// OpenAPI `operationId`.
    pub name: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The request body's schema (in `components.schemas`), if it takes one.
    pub body: Option<&'static str>,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// The success status and its body's schema (`None`: no body).
    pub success: (u16, Option<&'static str>),
    /// Statuses particular to this operation, beyond those implied by its access, body and
    /// path (see [`Operation::error_statuses`]).
    pub errors: &'static [u16],
    /// What the table's other fields do not say; [`Extra::NONE`] for most operations.
    pub extra: Extra,
    pub handler: fn() -> MethodRouter<AppState>,
}

/// The less common parts of an operation, kept apart so that the usual one stays short.
#[derive(Debug)]
pub struct Extra {
    /// Request headers the operation reads: name and meaning (`Herald-Tenant` is implied by
    /// [`Access::Tenant`]).
    pub headers: &'static [(&'static str, &'static str)],
    /// Media types the body may have besides `application/json`, with their schemas.
    pub body_types: &'static [(&'static str, &'static str)],
    /// The body may be left out.
    pub body_optional: bool,
    /// Other success statuses: status, body schema, when.
    pub also: &'static [(u16, &'static str, &'static str)],
}

impl Extra {
    pub const NONE: Extra = Extra {
        headers: &[],
        body_types: &[],
        body_optional: false,
        also: &[],
    };
}

impl Operation {
    /// Path parameter names, in order.
    pub fn path_parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// Every error status the operation can answer.
    pub fn error_statuses(&self) -> Vec<u16> {
        let mut statuses: Vec<u16> = self.errors.to_vec();
        match self.access {
            Access::Tenant => statuses.extend([401, 403, 429]),
            Access::Admin => statuses.extend([401, 403]),
            Access::Any => statuses.push(401),
            Access::Signed => statuses.extend([401, 429]),
            Access::Public => {}
        }
        if self.body.is_some() {
            statuses.extend([400, 413, 415, 422]);
        }
        if !self.query.is_empty() {
            statuses.push(422);
        }
        if self.path.contains('{') {
            statuses.push(404);
        }
        if self.access != Access::Public {
            statuses.push(503);
        }
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }
}

const EVENT_FILTERS: &[(&str, &str)] = &[
    (
        "type",
        "an exact event type, or a prefix ending in `*` (`invoice.*`)",
    ),
    ("source", "only events from this source"),
    ("since", "received at or after this RFC 3339 time"),
    ("until", "received before this RFC 3339 time"),
    ("limit", "page size, 1 to 1000 (default 100)"),
    ("cursor", "`next_cursor` of the previous page"),
];

const EXECUTION_FILTERS: &[(&str, &str)] = &[
    (
        "status",
        "pending, processing, retry_scheduled, succeeded, failed or cancelled",
    ),
    ("action_id", "only this action's executions"),
    ("event_id", "only this event's executions"),
    ("since", "created at or after this RFC 3339 time"),
    ("until", "created before this RFC 3339 time"),
    ("limit", "page size, 1 to 1000 (default 100)"),
    ("cursor", "`next_cursor` of the previous page"),
];

/// The listing's filters without its paging: what an export or a retry by filter selects.
const EXECUTION_EXPORT_FILTERS: &[(&str, &str)] = EXECUTION_FILTERS.split_at(5).0;

const STATS_WINDOW: &[(&str, &str)] = &[
    (
        "since",
        "start of the window, RFC 3339 (default 24 hours before `until`)",
    ),
    (
        "until",
        "end of the window, RFC 3339 (default now); at most 31 days after `since`",
    ),
];

const ACTION_FILTERS: &[(&str, &str)] = &[
    ("enabled", "true or false"),
    ("handler_type", "webhook, publish or log"),
    (
        "event_type",
        "actions with a pattern matching this event type, wildcards included",
    ),
    ("q", "case-insensitive text in the name or description"),
    ("include_deleted", "true to include soft-deleted actions"),
    ("limit", "page size, 1 to 1000 (default 100)"),
    ("cursor", "`next_cursor` of the previous page"),
];

const IDEMPOTENCY_KEY: (&str, &str) = (
    "Idempotency-Key",
    "Up to 255 visible ASCII characters naming this one request: a repeat within the tenant \
     answers with the first event's id and `duplicate: true`, and starts nothing",
);

/// One event in: Herald's JSON, or a CloudEvent in binary mode (the `ce-*` headers).
const EVENT_HEADERS: &[(&str, &str)] = &[
    IDEMPOTENCY_KEY,
    (
        "ce-specversion",
        "CloudEvents binary mode: `1.0`. The attributes are then `ce-*` headers (`ce-id`, \
         `ce-type` and `ce-source` required, `ce-time`; any other `ce-<name>` goes into \
         `metadata`), their values percent-encoded UTF-8, and the body is the data (JSON, or \
         text/* stored as a string)",
    ),
    ("ce-id", "CloudEvents binary mode: the event id"),
    ("ce-type", "CloudEvents binary mode: the event type"),
    ("ce-source", "CloudEvents binary mode: the event source"),
    ("ce-time", "CloudEvents binary mode: RFC 3339 time"),
];

const CLOUDEVENT: (&str, &str) = ("application/cloudevents+json", "CloudEvent");
const CLOUDEVENT_BATCH: (&str, &str) = ("application/cloudevents-batch+json", "CloudEventBatch");

/// The whole API.
pub static OPERATIONS: &[Operation] = &[
    Operation {
        method: Method::POST,
        path: "/v1/events",
        access: Access::Tenant,
        name: "sendEvent",
        tag: "events",
        summary: "Send one event (Herald's JSON, or a CloudEvent in structured, binary or \
                  batch mode). 202 once stored; 200 with the results when it matched sync \
                  actions. Honours `Idempotency-Key`.",
        body: Some("EventIn"),
        query: &[],
        success: (202, Some("EventAccepted")),
        errors: &[],
        extra: Extra {
            headers: EVENT_HEADERS,
            body_types: &[CLOUDEVENT, CLOUDEVENT_BATCH],
            also: &[(
                200,
                "EventAccepted",
                "Stored, and it matched sync actions: their results (`timed_out` when the \
                 bound passed first)",
            )],
            ..Extra::NONE
        },
        handler: || post(events::create),
    },
    Operation {
        method: Method::POST,
        path: "/v1/events/batch",
        access: Access::Tenant,
        name: "sendEventBatch",
        tag: "events",
        summary: "Send a JSON array of events (or a CloudEvents batch), stored together or \
                  not at all. Each event is deduplicated by its own `id`; an \
                  `Idempotency-Key` header is refused (422 `idempotency_key_not_allowed`).",
        body: Some("EventBatch"),
        query: &[],
        success: (202, Some("EventBatchAccepted")),
        errors: &[],
        extra: Extra {
            body_types: &[CLOUDEVENT_BATCH, CLOUDEVENT],
            ..Extra::NONE
        },
        handler: || post(events::create_batch),
    },
    Operation {
        method: Method::GET,
        path: "/v1/events",
        access: Access::Tenant,
        name: "listEvents",
        tag: "events",
        summary: "Events by type, source and time of arrival, newest first, a page at a time.",
        body: None,
        query: EVENT_FILTERS,
        success: (200, Some("EventPage")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(events::list),
    },
    Operation {
        method: Method::GET,
        path: "/v1/events/{id}",
        access: Access::Tenant,
        name: "getEvent",
        tag: "events",
        summary: "An event with its executions.",
        body: None,
        query: &[],
        success: (200, Some("EventView")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(events::get),
    },
    Operation {
        method: Method::GET,
        path: "/v1/actions",
        access: Access::Tenant,
        name: "listActions",
        tag: "actions",
        summary: "The tenant's actions by filter, ordered by name, a page at a time.",
        body: None,
        query: ACTION_FILTERS,
        success: (200, Some("ActionPage")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(action_list::list),
    },
    Operation {
        method: Method::POST,
        path: "/v1/actions",
        access: Access::Tenant,
        name: "createAction",
        tag: "actions",
        summary: "Create an action; live in the matchers within moments. The signing secret \
                  is shown in full only in this answer.",
        body: Some("ActionIn"),
        query: &[],
        success: (201, Some("Action")),
        errors: &[409],
        extra: Extra::NONE,
        handler: || post(actions::create),
    },
    Operation {
        method: Method::PUT,
        path: "/v1/actions",
        access: Access::Tenant,
        name: "applyActionSet",
        tag: "actions",
        summary: "Actions as code: apply a whole set by name in one transaction. Soft-deleted \
                  actions are left alone; with `prune`, live actions the set does not name are \
                  soft-deleted.",
        body: Some("ActionSet"),
        query: &[],
        success: (200, Some("ActionSetReport")),
        errors: &[409],
        extra: Extra::NONE,
        handler: || put(action_edit::apply_set),
    },
    Operation {
        method: Method::GET,
        path: "/v1/actions/{id}",
        access: Access::Tenant,
        name: "getAction",
        tag: "actions",
        summary: "One action (soft-deleted ones too), secrets masked.",
        body: None,
        query: &[],
        success: (200, Some("Action")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(actions::get),
    },
    Operation {
        method: Method::PATCH,
        path: "/v1/actions/{id}",
        access: Access::Tenant,
        name: "updateAction",
        tag: "actions",
        summary: "Change an action with a JSON merge patch, validated as a whole. Secrets are \
                  kept unless the patch names one. `If-Match: \"<revision>\"` makes it \
                  conditional (412 when the action moved on).",
        body: Some("ActionPatch"),
        query: &[],
        success: (200, Some("Action")),
        errors: &[409, 412],
        extra: Extra {
            headers: &[(
                "If-Match",
                "The action's `ETag` (its revision, `\"3\"`): the change is made only if the \
                 action is still at it, else 412 `revision_mismatch`",
            )],
            ..Extra::NONE
        },
        handler: || patch(action_edit::update),
    },
    Operation {
        method: Method::DELETE,
        path: "/v1/actions/{id}",
        access: Access::Tenant,
        name: "deleteAction",
        tag: "actions",
        summary: "Soft delete: kept for the audit trail and restorable, never matched.",
        body: None,
        query: &[],
        success: (200, Some("Action")),
        errors: &[],
        extra: Extra::NONE,
        handler: || delete(actions::delete),
    },
    Operation {
        method: Method::POST,
        path: "/v1/actions/{id}/restore",
        access: Access::Tenant,
        name: "restoreAction",
        tag: "actions",
        summary: "Undo a soft delete.",
        body: None,
        query: &[],
        success: (200, Some("Action")),
        errors: &[422],
        extra: Extra::NONE,
        handler: || post(actions::restore),
    },
    Operation {
        method: Method::POST,
        path: "/v1/actions/{id}/enable",
        access: Access::Tenant,
        name: "enableAction",
        tag: "actions",
        summary: "Enable an action.",
        body: None,
        query: &[],
        success: (200, Some("Action")),
        errors: &[422],
        extra: Extra::NONE,
        handler: || post(actions::enable),
    },
    Operation {
        method: Method::POST,
        path: "/v1/actions/{id}/disable",
        access: Access::Tenant,
        name: "disableAction",
        tag: "actions",
        summary: "Disable an action.",
        body: None,
        query: &[],
        success: (200, Some("Action")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(actions::disable),
    },
    Operation {
        method: Method::POST,
        path: "/v1/actions/{id}/test",
        access: Access::Tenant,
        name: "testAction",
        tag: "actions",
        summary: "Would this event match, and why or why not, condition by condition. With \
                  `send: true`, one real signed delivery to the action's webhook (not recorded \
                  as an execution), answered with the attempt.",
        body: Some("ActionTest"),
        query: &[],
        success: (200, Some("ActionTestReport")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(action_test::test),
    },
    Operation {
        method: Method::GET,
        path: "/v1/actions/{id}/stats",
        access: Access::Tenant,
        name: "getActionStats",
        tag: "audit",
        summary: "One action's executions by status, success rate, attempts per success and \
                  duration percentiles over a window.",
        body: None,
        query: STATS_WINDOW,
        success: (200, Some("Stats")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(stats::of_action),
    },
    Operation {
        method: Method::GET,
        path: "/v1/stats",
        access: Access::Tenant,
        name: "getStats",
        tag: "audit",
        summary: "The tenant's executions by status, success rate, attempts per success and \
                  duration percentiles over a window.",
        body: None,
        query: STATS_WINDOW,
        success: (200, Some("Stats")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(stats::overall),
    },
    Operation {
        method: Method::GET,
        path: "/v1/overview",
        access: Access::Tenant,
        name: "getOverview",
        tag: "audit",
        summary: "The tenant at a glance: the last hour minute by minute (events, \
                  executions succeeded and failed), success rate, open circuits and overdue \
                  retries.",
        body: None,
        query: &[],
        success: (200, Some("Overview")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(overview::get),
    },
    Operation {
        method: Method::GET,
        path: "/v1/live",
        access: Access::Tenant,
        name: "streamOverview",
        tag: "audit",
        summary: "The overview as server-sent events: at once, then whenever it changes.",
        body: None,
        query: &[],
        success: (200, Some("OverviewStream")),
        errors: &[429],
        extra: Extra::NONE,
        handler: || get(overview::live),
    },
    Operation {
        method: Method::POST,
        path: "/v1/deliveries",
        access: Access::Tenant,
        name: "createDelivery",
        tag: "deliveries",
        summary: "A one-off signed webhook to a URL, at `scheduled_at` or now, matching no \
                  action; idempotent by `idempotency_key`.",
        body: Some("DeliveryIn"),
        query: &[],
        success: (202, Some("DeliveryAccepted")),
        errors: &[],
        extra: Extra {
            headers: &[(
                "Idempotency-Key",
                "As the body's `idempotency_key` (the header wins): a repeat answers with the \
                 first delivery",
            )],
            ..Extra::NONE
        },
        handler: || post(deliveries::create),
    },
    Operation {
        method: Method::GET,
        path: "/v1/executions",
        access: Access::Tenant,
        name: "listExecutions",
        tag: "audit",
        summary: "Executions by filter, newest first, a page at a time; `status=failed` is the \
                  dead-letter view.",
        body: None,
        query: EXECUTION_FILTERS,
        success: (200, Some("ExecutionPage")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(executions::list),
    },
    Operation {
        method: Method::GET,
        path: "/v1/executions/export",
        access: Access::Tenant,
        name: "exportExecutions",
        tag: "audit",
        summary: "The executions a filter selects, as CSV, newest first (at most 100,000).",
        body: None,
        query: EXECUTION_EXPORT_FILTERS,
        success: (200, Some("ExecutionCsv")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(execution_export::export),
    },
    Operation {
        method: Method::POST,
        path: "/v1/executions/retry",
        access: Access::Tenant,
        name: "retryExecutions",
        tag: "audit",
        summary: "Retry every execution matching a filter (by default every failed one), \
                  page by page in the scheduler; follow it at /v1/bulk-retries/{id}.",
        body: Some("ExecutionFilter"),
        query: &[],
        success: (202, Some("BulkRetry")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(executions::retry_by_filter),
    },
    Operation {
        method: Method::GET,
        path: "/v1/executions/{id}",
        access: Access::Tenant,
        name: "getExecution",
        tag: "audit",
        summary: "An execution with its attempts.",
        body: None,
        query: &[],
        success: (200, Some("ExecutionView")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(executions::get),
    },
    Operation {
        method: Method::POST,
        path: "/v1/executions/{id}/retry",
        access: Access::Tenant,
        name: "retryExecution",
        tag: "audit",
        summary: "One more attempt for a finished execution.",
        body: None,
        query: &[],
        success: (202, Some("Execution")),
        errors: &[409],
        extra: Extra::NONE,
        handler: || post(executions::retry),
    },
    Operation {
        method: Method::POST,
        path: "/v1/executions/{id}/cancel",
        access: Access::Tenant,
        name: "cancelExecution",
        tag: "audit",
        summary: "Stop an unfinished execution; its waiting attempts are dropped.",
        body: None,
        query: &[],
        success: (200, Some("Execution")),
        errors: &[409],
        extra: Extra::NONE,
        handler: || post(executions::cancel),
    },
    Operation {
        method: Method::GET,
        path: "/v1/bulk-retries/{id}",
        access: Access::Tenant,
        name: "getBulkRetry",
        tag: "audit",
        summary: "Where a retry by filter stands.",
        body: None,
        query: &[],
        success: (200, Some("BulkRetry")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(bulk_retries::get),
    },
    Operation {
        method: Method::POST,
        path: "/v1/bulk-retries/{id}/cancel",
        access: Access::Tenant,
        name: "cancelBulkRetry",
        tag: "audit",
        summary: "Stop a retry by filter; executions already reopened go on.",
        body: None,
        query: &[],
        success: (200, Some("BulkRetry")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(bulk_retries::cancel),
    },
    Operation {
        method: Method::GET,
        path: "/v1/endpoints",
        access: Access::Tenant,
        name: "listEndpoints",
        tag: "endpoints",
        summary: "The tenant's destinations with their circuit state.",
        body: None,
        query: &[],
        success: (200, Some("EndpointList")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(endpoints::list),
    },
    Operation {
        method: Method::POST,
        path: "/v1/endpoints/{id}/reset",
        access: Access::Tenant,
        name: "resetEndpoint",
        tag: "endpoints",
        summary: "Close a destination's circuit now.",
        body: None,
        query: &[],
        success: (200, Some("Endpoint")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(endpoints::reset),
    },
    Operation {
        method: Method::GET,
        path: "/v1/providers",
        access: Access::Tenant,
        name: "listProviders",
        tag: "providers",
        summary: "The tenant's inbound webhook providers, secrets masked.",
        body: None,
        query: &[],
        success: (200, Some("ProviderList")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(providers::list),
    },
    Operation {
        method: Method::POST,
        path: "/v1/providers",
        access: Access::Tenant,
        name: "createProvider",
        tag: "providers",
        summary: "Register a provider whose signed webhooks become events at \
                  /v1/hooks/{provider_id}.",
        body: Some("ProviderIn"),
        query: &[],
        success: (201, Some("Provider")),
        errors: &[409],
        extra: Extra::NONE,
        handler: || post(providers::create),
    },
    Operation {
        method: Method::GET,
        path: "/v1/providers/{id}",
        access: Access::Tenant,
        name: "getProvider",
        tag: "providers",
        summary: "One provider, secret masked.",
        body: None,
        query: &[],
        success: (200, Some("Provider")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(providers::get),
    },
    Operation {
        method: Method::DELETE,
        path: "/v1/providers/{id}",
        access: Access::Tenant,
        name: "deleteProvider",
        tag: "providers",
        summary: "Remove a provider; its hook URL answers 404 from then on.",
        body: None,
        query: &[],
        success: (200, Some("Provider")),
        errors: &[],
        extra: Extra::NONE,
        handler: || delete(providers::delete),
    },
    Operation {
        method: Method::PUT,
        path: "/v1/secrets/{name}",
        access: Access::Tenant,
        name: "putSecret",
        tag: "secrets",
        summary: "Store a secret for templates to use as {{ secrets.NAME }} (201 when new, 200 \
                  when replaced). Its value is sealed and never shown again.",
        body: Some("SecretIn"),
        query: &[],
        success: (200, Some("Secret")),
        errors: &[],
        extra: Extra {
            also: &[(201, "Secret", "the secret is new")],
            ..Extra::NONE
        },
        handler: || put(secrets::put),
    },
    Operation {
        method: Method::GET,
        path: "/v1/secrets",
        access: Access::Tenant,
        name: "listSecrets",
        tag: "secrets",
        summary: "The tenant's secrets by name, with when each was made and last replaced; \
                  never their values.",
        body: None,
        query: &[],
        success: (200, Some("SecretList")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(secrets::list),
    },
    Operation {
        method: Method::DELETE,
        path: "/v1/secrets/{name}",
        access: Access::Tenant,
        name: "deleteSecret",
        tag: "secrets",
        summary: "Remove a secret; an action still using it fails each attempt, naming it.",
        body: None,
        query: &[],
        success: (204, None),
        errors: &[],
        extra: Extra::NONE,
        handler: || delete(secrets::delete),
    },
    Operation {
        method: Method::POST,
        path: "/v1/hooks/{provider_id}",
        access: Access::Signed,
        name: "receiveProviderWebhook",
        tag: "providers",
        summary: "A provider's webhook: its signature is checked by the provider's scheme \
                  (401 and nothing stored when it fails), then it becomes an event.",
        body: Some("ProviderPayload"),
        query: &[],
        success: (202, Some("EventAccepted")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(hooks::receive),
    },
    Operation {
        method: Method::POST,
        path: "/v1/tenants",
        access: Access::Admin,
        name: "createTenant",
        tag: "tenants",
        summary: "Create a tenant.",
        body: Some("TenantIn"),
        query: &[],
        success: (201, Some("Tenant")),
        errors: &[],
        extra: Extra::NONE,
        handler: || post(tenants::create),
    },
    Operation {
        method: Method::GET,
        path: "/v1/tenants",
        access: Access::Admin,
        name: "listTenants",
        tag: "tenants",
        summary: "Tenants by name (at most 1000): the admin token then acts for one with \
                  `Herald-Tenant: <id>`.",
        body: None,
        query: &[],
        success: (200, Some("TenantList")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(tenants::list),
    },
    Operation {
        method: Method::GET,
        path: "/v1/tenants/{id}",
        access: Access::Admin,
        name: "getTenant",
        tag: "tenants",
        summary: "One tenant with its keys, revoked ones included (id, name, first \
                  characters, times; never the keys themselves).",
        body: None,
        query: &[],
        success: (200, Some("TenantWithKeys")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(tenants::get),
    },
    Operation {
        method: Method::POST,
        path: "/v1/tenants/{id}/keys",
        access: Access::Admin,
        name: "createApiKey",
        tag: "tenants",
        summary: "A new API key for the tenant, shown once in this answer and stored hashed. \
                  The body may be left out (an unnamed key).",
        body: Some("ApiKeyIn"),
        query: &[],
        success: (201, Some("ApiKeyCreated")),
        errors: &[],
        extra: Extra {
            body_optional: true,
            ..Extra::NONE
        },
        handler: || post(tenants::create_key),
    },
    Operation {
        method: Method::DELETE,
        path: "/v1/tenants/{id}/keys/{key_id}",
        access: Access::Admin,
        name: "revokeApiKey",
        tag: "tenants",
        summary: "Revoke a key; it stops working at once.",
        body: None,
        query: &[],
        success: (204, None),
        errors: &[],
        extra: Extra::NONE,
        handler: || delete(tenants::revoke_key),
    },
    Operation {
        method: Method::GET,
        path: "/v1/whoami",
        access: Access::Any,
        name: "whoami",
        tag: "tenants",
        summary: "Whom the credential belongs to: the administrator, or which tenant.",
        body: None,
        query: &[],
        success: (200, Some("Whoami")),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(tenants::whoami),
    },
    Operation {
        method: Method::GET,
        path: "/openapi.json",
        access: Access::Public,
        name: "getOpenApi",
        tag: "meta",
        summary: "This document.",
        body: None,
        query: &[],
        success: (200, None),
        errors: &[],
        extra: Extra::NONE,
        handler: || get(crate::openapi::serve),
    },
];
