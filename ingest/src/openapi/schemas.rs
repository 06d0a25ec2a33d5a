//! The request and response schemas of the OpenAPI document. Enumerations come from the
//! code (statuses, handler types, operators) so that they cannot drift from it.

use crate::provider::Scheme;
use herald_common::condition::Operator;
use herald_common::status::{BulkRetryStatus, ExecutionStatus};
use herald_handlers::Handler;
use serde_json::{Map, Value, json};

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `schema` with every property it lists required. For answers: the code sends every field
/// each time (an absent value as null), so a client may rely on the key, and a field the code
/// stops sending fails the check of real answers (tests/it/api_access/response_schemas.rs).
/// Extra properties stay allowed: a new field is not a break.
fn every_field_required(mut schema: Value) -> Value {
    let keys: Vec<Value> = schema["properties"]
        .as_object()
        .map(|properties| properties.keys().cloned().map(Value::String).collect())
        .unwrap_or_default();
    schema["required"] = Value::Array(keys);
    schema
}

fn page_of(item: &str) -> Value {
    json!({"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": reference(item)},
        "next_cursor": {"type": ["string", "null"],
            "description": "Pass as `cursor` for the next page; null on the last page."}}})
}

/// `fields` with `more` added (both JSON objects).
fn with(mut fields: Value, more: Value) -> Value {
    if let (Some(fields), Value::Object(more)) = (fields.as_object_mut(), more) {
        fields.extend(more);
    }
    fields
}

fn list_of(item: &str) -> Value {
    json!({"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "items": reference(item)}}})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn nullable_time() -> Value {
    json!({"type": ["string", "null"], "format": "date-time"})
}

/// Every schema, by name.
pub fn all() -> Map<String, Value> {
    let operators = names(&Operator::ALL, Operator::as_str);
    let statuses = names(ExecutionStatus::ALL, ExecutionStatus::as_str);
    let bulk_statuses = names(BulkRetryStatus::ALL, BulkRetryStatus::as_str);
    let event_type = json!({"type": "string", "maxLength": 255,
        "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$"});
    let metadata = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let condition = json!({"oneOf": [
        {"type": "object", "required": ["path", "op"], "additionalProperties": false,
         "properties": {"path": {"type": "string"}, "op": {"enum": operators}, "value": {}}},
        {"type": "object", "required": ["any"], "additionalProperties": false,
         "properties": {"any": {"type": "array", "items": reference("Condition")}}},
        {"type": "object", "required": ["all"], "additionalProperties": false,
         "properties": {"all": {"type": "array", "items": reference("Condition")}}},
        {"type": "object", "required": ["not"], "additionalProperties": false,
         "properties": {"not": reference("Condition")}},
    ]});
    let handler = reference("Handler");
    let retry = json!({"oneOf": [
        {"type": "object", "properties": {"max_attempts": {"type": "integer", "minimum": 1},
            "delays_s": {"type": "array", "items": {"type": "integer", "minimum": 0}}}},
        {"type": "object", "required": ["backoff"], "properties": {
            "max_attempts": {"type": "integer", "minimum": 1},
            "backoff": {"enum": ["exponential", "linear", "fixed"]},
            "initial_s": {"type": "number"}, "max_s": {"type": "number"},
            "jitter": {"type": "number", "minimum": 0, "maximum": 1}}}]});
    let stored_event = json!({
        "id": {"type": "string"}, "type": {"type": "string"},
        "source": {"type": ["string", "null"]}, "time": nullable_time(),
        "received_at": time(), "data": {}, "metadata": {"type": "object"},
        "matched_at": nullable_time(), "matched_count": {"type": ["integer", "null"]}});
    let action_fields = json!({
        "name": {"type": "string", "maxLength": 200},
        "description": {"type": ["string", "null"], "maxLength": 2000},
        "event_types": {"type": "array", "minItems": 1, "maxItems": 100,
            "items": {"type": "string"},
            "description": "Patterns: `*` is one segment, `#` any number."},
        "source": {"type": ["string", "null"]},
        "conditions": {"type": "array", "items": reference("Condition")},
        "priority": {"oneOf": [{"type": "integer"},
            {"enum": ["critical", "high", "normal", "low"]}]},
        "mode": {"enum": ["async", "sync"]},
        "handler": handler,
        "retry": retry,
        "rate_limit_per_s": {"type": ["integer", "null"], "minimum": 1},
        "max_concurrency": {"type": ["integer", "null"], "minimum": 1},
        "after_lower_priorities": {"type": "boolean", "default": false, "description":
            "Start, for an event, only once every execution of it with a lower priority number has ended."},
        "requires_success": {"type": "boolean", "default": false, "description":
            "With after_lower_priorities: cancelled (the reason recorded) if any of them did not succeed."},
        "enabled": {"type": "boolean"},
    });
    let mut action = action_fields.clone();
    for (key, value) in [
        ("id", json!({"type": "string"})),
        ("tenant_id", json!({"type": "string"})),
        ("revision", json!({"type": "integer"})),
        ("disabled_reason", json!({"type": ["string", "null"]})),
        ("created_at", time()),
        ("updated_at", time()),
        ("deleted_at", nullable_time()),
        // Stored as the number a word stands for.
        ("priority", json!({"type": "integer"})),
    ] {
        action[key] = value;
    }
    let attempt = every_field_required(json!({"type": "object", "properties": {
        "attempt": {"type": "integer"}, "started_at": time(), "duration_ms": {"type": "integer"},
        "request_url": {"type": "string"},
        "response_status": {"type": ["integer", "null"]},
        "response_headers": {"type": ["object", "null"]},
        "response_body": {"type": ["string", "null"], "description": "The first 64 KiB"},
        "outcome": {"type": "string"},
        "error_kind": {"type": ["string", "null"]},
        "error_message": {"type": ["string", "null"]}}}));
    let execution = every_field_required(json!({"type": "object", "properties": {
        "id": {"type": "string"}, "event_id": {"type": "string"},
        "action_id": {"type": "string"}, "status": {"enum": statuses},
        "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"},
        "next_attempt_at": nullable_time(), "last_error": {"type": ["string", "null"]},
        "created_at": time(), "updated_at": time(), "finished_at": nullable_time()}}));
    let mut execution_view = execution.clone();
    // Shown with its attempts, in place of their count.
    execution_view["properties"]["attempts"] = json!({"type": "array",
        "items": reference("Attempt")});
    let event_in = json!({"type": "object", "required": ["type"], "properties": {
        "id": {"type": "string", "maxLength": 255,
            "description": "Client-chosen; the dedup key within the tenant"},
        "type": event_type, "source": {"type": "string"}, "time": time(), "data": {},
        "metadata": metadata}});
    let accepted = json!({"type": "object", "required": ["id", "duplicate"], "properties": {
        "id": {"type": "string"}, "duplicate": {"type": "boolean"},
        "results": {"type": "array", "items": reference("SyncResult"),
            "description": "Only when the event matched sync actions (status 200)"},
        "timed_out": {"type": "boolean"}}});
    let sync_result = every_field_required(json!({"type": "object", "properties": {
        "action_id": {"type": "string"}, "execution_id": {"type": ["string", "null"]},
        "status": {"enum": statuses}, "attempts": {"type": "integer"},
        "response": {"oneOf": [reference("Attempt"), {"type": "null"}]}}}));
    let stats = every_field_required(json!({"type": "object", "properties": {
        "since": time(), "until": time(),
        "executions": {"type": "object", "additionalProperties": {"type": "integer"},
            "description": "Executions created in the window by status, and `total`"},
        "success_rate": {"type": ["number", "null"]},
        "attempts_per_success": {"type": ["number", "null"]},
        "duration_ms": {"type": "object", "required": ["p50", "p95"], "properties": {
            "p50": {"type": ["number", "null"]}, "p95": {"type": ["number", "null"]}}},
        "step_attempts": {"type": "object", "description":
            "Workflow steps' attempts in the window by handler type, then outcome",
            "additionalProperties": {"type": "object",
                "additionalProperties": {"type": "integer"}}}}}));
    let window = every_field_required(json!({"type": "object", "properties": {
        "since": time(), "attempts": {"type": "integer"}, "failures": {"type": "integer"},
        "failure_rate": {"type": ["number", "null"]}}}));
    let endpoint = every_field_required(json!({"type": "object", "properties": {
        "id": {"type": "string"}, "endpoint": {"type": "string",
            "description": "scheme://host:port"},
        "state": {"enum": ["closed", "open", "half_open"]},
        "opened_at": nullable_time(), "retry_at": nullable_time(),
        "trips": {"type": "integer"}, "consecutive_failures": {"type": "integer"},
        "window": window, "last_error": {"type": ["string", "null"]},
        "updated_at": time()}}));
    let filter = json!({"type": "object", "additionalProperties": false, "properties": {
        "status": {"enum": statuses}, "action_id": {"type": "string"},
        "event_id": {"type": "string"}, "since": time(), "until": time()}});
    // The filter as a retry by filter shows it: its status filled in, the rest null when
    // not given.
    let filter_view = every_field_required(json!({"type": "object", "properties": {
        "status": {"enum": statuses}, "action_id": {"type": ["string", "null"]},
        "event_id": {"type": ["string", "null"]}, "since": nullable_time(),
        "until": nullable_time()}}));
    let bulk = every_field_required(json!({"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"enum": bulk_statuses}, "filter": filter_view,
        "retried": {"type": "integer"}, "created_at": time(), "updated_at": time(),
        "finished_at": nullable_time()}}));
    let delivery_in = json!({"type": "object", "required": ["url", "payload"],
        "additionalProperties": false, "properties": {
        "url": {"type": "string", "format": "uri"}, "payload": {},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "secret": {"type": "string"}, "max_attempts": {"type": "integer", "minimum": 1},
        "scheduled_at": time(), "idempotency_key": {"type": "string"},
        "type": event_type.clone()}});
    let provider_in = json!({"type": "object", "required": ["name", "scheme", "secret",
        "event_type"], "properties": {
        "name": {"type": "string"}, "scheme": {"enum": Scheme::NAMES},
        "secret": {"type": "string"},
        "tolerance_s": {"type": "integer", "minimum": 0, "maximum": 86400,
            "description": "For schemes with a timestamp; default 300"},
        "event_type": {"oneOf": [
            {"type": "object", "required": ["field"], "properties": {"field": {"type": "string",
                "description": "A dotted path into the JSON body"}}},
            {"type": "object", "required": ["header"], "properties": {"header": {"type":
                "string"}}}]},
        "type_prefix": {"type": "string"}, "source": {"type": "string"},
        "signature_header": {"type": "string", "description": "hmac_sha256 only"}}});
    let mut provider = provider_in.clone();
    for (key, value) in [
        ("id", json!({"type": "string"})),
        ("tenant_id", json!({"type": "string"})),
        ("hook_path", json!({"type": "string"})),
        ("created_at", time()),
        // Shown as null when not set (or, for the header, fixed by the scheme).
        ("tolerance_s", json!({"type": ["integer", "null"]})),
        ("type_prefix", json!({"type": ["string", "null"]})),
        ("signature_header", json!({"type": ["string", "null"]})),
        (
            "secret",
            json!({"type": "string",
            "description": "Masked, except in the answer that created the provider"}),
        ),
    ] {
        provider["properties"][key] = value;
    }
    let provider = every_field_required(provider);
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    let api_key = every_field_required(json!({"type": "object", "properties": {
        "id": {"type": "string"}, "tenant_id": {"type": "string"},
        "name": {"type": "string"},
        "prefix": {"type": "string", "description": "The key's first characters, to tell it \
            apart; never enough to use"},
        "created_at": time(), "revoked_at": nullable_time()}}));
    let mut api_key_created = api_key.clone();
    api_key_created["properties"]["key"] =
        json!({"type": "string", "description": "Shown only here"});
    let api_key_created = every_field_required(api_key_created);
    let cloudevent = json!({"type": "object",
        "required": ["specversion", "id", "type", "source"], "properties": {
        "specversion": {"const": "1.0"}, "id": {"type": "string"}, "type": event_type.clone(),
        "source": {"type": "string"}, "time": time(),
        "datacontenttype": {"type": "string"}, "data": {},
        "data_base64": {"type": "string", "description": "JSON or text, base64-encoded"}},
        "additionalProperties": {"type": ["string", "number", "boolean"],
            "description": "Other attributes and extensions go into `metadata` as strings"}});
    let entries = [
        (
            "Error",
            json!({"type": "object", "required": ["error"], "properties": {
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string", "description": "Stable snake_case"},
                "message": {"type": "string"}}}}}),
        ),
        ("EventIn", event_in.clone()),
        ("CloudEvent", cloudevent),
        (
            "CloudEventBatch",
            json!({"type": "array", "items": reference("CloudEvent")}),
        ),
        ("EventBatch", json!({"type": "array", "items": event_in})),
        ("EventAccepted", accepted),
        (
            "EventBatchAccepted",
            json!({"type": "object", "required": ["data"], "properties": {"data": {
            "type": "array", "items": {"type": "object", "required": ["id", "duplicate"],
                "properties": {"id": {"type": "string"}, "duplicate": {"type": "boolean"}}}}}}),
        ),
        ("SyncResult", sync_result),
        (
            "EventView",
            every_field_required(json!({"type": "object", "properties": with(
                stored_event.clone(),
                json!({"executions": {"type": "array", "items": reference("Execution")}}),
            )})),
        ),
        (
            "Event",
            every_field_required(json!({"type": "object", "properties": stored_event})),
        ),
        ("EventPage", page_of("Event")),
        ("Condition", condition),
        (
            "ActionIn",
            json!({"type": "object", "required": ["name", "event_types", "handler"],
            "additionalProperties": false, "properties": action_fields}),
        ),
        (
            "ActionPatch",
            json!({"type": "object", "description":
            "A JSON merge patch (RFC 7396) of ActionIn: null removes an optional field",
            "properties": action_fields}),
        ),
        (
            "Action",
            every_field_required(json!({"type": "object", "properties": action})),
        ),
        ("ActionPage", page_of("Action")),
        (
            "ActionSet",
            json!({"type": "object", "required": ["actions"],
            "additionalProperties": false, "properties": {
            "actions": {"type": "array", "maxItems": crate::store::action_set::MAX_ACTION_SET,
                "items": reference("ActionIn")},
            "prune": {"type": "boolean", "default": false}}}),
        ),
        (
            "ActionSetReport",
            every_field_required(json!({"type": "object", "properties": {
            "created": string_list, "updated": string_list, "unchanged": string_list,
            "skipped_deleted": string_list, "deleted": string_list}})),
        ),
        (
            "ActionTest",
            json!({"type": "object", "required": ["event"],
            "additionalProperties": false, "properties": {
            "event": reference("EventIn"), "send": {"type": "boolean", "default": false}}}),
        ),
        (
            "ActionTestReport",
            json!({"type": "object",
            "required": ["matched", "live", "event_type", "source", "conditions"],
            "properties": {
            "matched": {"type": "boolean"}, "live": {"type": "boolean"},
            "event_type": {"type": "object"}, "source": {"type": ["object", "null"]},
            "conditions": {"type": "array", "items": {"type": "object"}},
            "delivery": {"type": "object", "description": "With send: the attempt"}}}),
        ),
        ("Attempt", attempt),
        ("Execution", execution),
        ("ExecutionView", execution_view),
        ("ExecutionPage", page_of("Execution")),
        ("ExecutionFilter", filter),
        ("BulkRetry", bulk),
        ("Stats", stats),
        (
            "Overview",
            every_field_required(json!({"type": "object", "properties": {
            "last_hour": reference("Stats"),
            "events_last_hour": {"type": "integer"},
            "minutes": {"type": "array", "description": "The last hour, oldest minute first",
                "items": every_field_required(json!({"type": "object", "properties": {
                "at": time(), "events": {"type": "integer"}, "succeeded": {"type": "integer"},
                "failed": {"type": "integer"}}}))},
            "open_circuits": {"type": "integer"},
            "overdue_retries": {"type": "integer",
                "description": "Retries more than 30 s past their time"},
            "latest_event_at": nullable_time(), "circuits_changed_at": nullable_time(),
            "actions_changed_at": nullable_time()}})),
        ),
        (
            "OverviewStream",
            json!({"type": "string", "description": "Server-sent events: `overview` with an \
            Overview as its data, first at once and then whenever it changes (looked at every \
            2 s or more); `unavailable` while the database does not answer."}),
        ),
        (
            "ExecutionCsv",
            json!({"type": "string", "description": "RFC 4180 CSV with a header row: id, \
            event_id, action_id, status, attempts, max_attempts, created_at, updated_at, \
            finished_at, next_attempt_at, last_error. At most 100,000 rows, newest first; \
            `Herald-Truncated: true` when there were more."}),
        ),
        ("TenantList", list_of("Tenant")),
        (
            "Whoami",
            json!({"type": "object", "required": ["role"], "properties": {
            "role": {"enum": ["admin", "tenant"]},
            "tenant": {"description": "With a tenant key: the tenant",
                "oneOf": [reference("Tenant")]}},
            "if": {"properties": {"role": {"const": "tenant"}}},
            "then": {"required": ["tenant"]}}),
        ),
        ("Endpoint", endpoint),
        ("EndpointList", list_of("Endpoint")),
        ("DeliveryIn", delivery_in),
        (
            "DeliveryAccepted",
            json!({"type": "object", "required": ["id", "event_id", "duplicate"],
            "properties": {
            "id": {"type": "string", "description": "The execution id (the webhook-id)"},
            "event_id": {"type": "string"}, "status": {"type": "string"},
            "scheduled_at": {"type": "string", "format": "date-time",
                "description": "Absent on a duplicate, like status"},
            "duplicate": {"type": "boolean"},
            "secret": {"type": "string", "description": "Only when Herald made it up"}}}),
        ),
        (
            "SecretIn",
            json!({"type": "object", "required": ["value"], "additionalProperties": false,
            "properties": {"value": {"type": "string", "minLength": 1,
                "maxLength": herald_common::store::MAX_SECRET_LEN, "writeOnly": true}}}),
        ),
        (
            "Secret",
            every_field_required(json!({"type": "object", "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"},
            "created_at": time(), "updated_at": time()}})),
        ),
        ("SecretList", list_of("Secret")),
        ("ProviderIn", provider_in),
        ("Provider", provider),
        ("ProviderList", list_of("Provider")),
        (
            "ProviderPayload",
            json!({"description": "The provider's JSON body, as signed"}),
        ),
        (
            "TenantIn",
            json!({"type": "object", "required": ["name"],
            "additionalProperties": false, "properties": {
            "name": {"type": "string", "maxLength": 200}}}),
        ),
        (
            "Tenant",
            every_field_required(json!({"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "created_at": time()}})),
        ),
        (
            "TenantWithKeys",
            every_field_required(json!({"type": "object", "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "created_at": time(),
            "keys": {"type": "array", "items": reference("ApiKey"),
                "description": "Oldest first, revoked ones included"}}})),
        ),
        (
            "ApiKeyIn",
            json!({"type": "object", "additionalProperties": false, "properties": {
            "name": {"type": "string", "description": "To tell keys apart; default empty"}}}),
        ),
        ("ApiKey", api_key.clone()),
        ("ApiKeyCreated", api_key_created),
    ];
    let mut all: Map<String, Value> = entries
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    all.extend(handler_schemas());
    all
}

/// Each handler type's schema, from the handlers crate (`WebhookHandler`, ...), and `Handler`,
/// one of them by `type`.
fn handler_schemas() -> Map<String, Value> {
    let named: Vec<(String, &str, Value)> = Handler::schemas()
        .into_iter()
        .map(|(kind, schema)| (handler_schema_name(kind), kind, schema))
        .collect();
    let mapping: Map<String, Value> = named
        .iter()
        .map(|(name, kind, _)| {
            (
                (*kind).to_owned(),
                json!(format!("#/components/schemas/{name}")),
            )
        })
        .collect();
    let one_of: Vec<Value> = named.iter().map(|(name, _, _)| reference(name)).collect();
    let mut schemas: Map<String, Value> = named
        .into_iter()
        .map(|(name, _, schema)| (name, schema))
        .collect();
    schemas.insert(
        "Handler".into(),
        json!({"oneOf": one_of, "discriminator": {"propertyName": "type", "mapping": mapping}}),
    );
    schemas
}

/// `webhook` → `WebhookHandler`.
pub fn handler_schema_name(kind: &str) -> String {
    let camel: String = kind
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{camel}Handler")
}
