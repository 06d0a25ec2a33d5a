//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the operation table
//! ([`crate::api::OPERATIONS`], which also builds the router) and the schemas beside it. The
//! committed copy at `openapi.json` is checked against it by a test; `cargo xtask openapi`
//! rewrites it.

mod schemas;

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Map, Value, json};

use crate::api::{Access, OPERATIONS, Operation};

/// Where the committed copy lives, from the repository root.
pub const COMMITTED_PATH: &str = "openapi.json";

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document, built once.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// The document as committed: pretty JSON with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(document()).unwrap_or_default();
    text.push('\n');
    text
}

pub async fn serve() -> Json<Value> {
    Json(document().clone())
}

fn build() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let item = paths
            .entry(operation.path.to_owned())
            .or_insert_with(|| json!({}));
        item[operation.method.as_str().to_ascii_lowercase()] = describe(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Herald's HTTP API: events in, actions, audit, deliveries, \
                inbound provider webhooks, tenants. Errors are always \
                {\"error\": {\"code\", \"message\"}} with a stable snake_case code.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "tags": tags(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "tenantKey": {"type": "http", "scheme": "bearer",
                    "description": "A tenant's API key (`hk_…`), from POST /v1/tenants/{id}/keys; \
                        or the admin token with the tenant's id in a `Herald-Tenant` header."},
                "adminToken": {"type": "http", "scheme": "bearer",
                    "description": "The admin token set in `ingest.admin_token`."},
            },
            "schemas": schemas::all(),
        },
    })
}

fn tags() -> Vec<Value> {
    let mut seen: Vec<&str> = Vec::new();
    for operation in OPERATIONS {
        if !seen.contains(&operation.tag) {
            seen.push(operation.tag);
        }
    }
    seen.into_iter().map(|tag| json!({"name": tag})).collect()
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The media type of a success body, by its schema's name: JSON unless the name says CSV or
/// a stream of server-sent events.
fn media_type(schema: &str) -> &'static str {
    if schema.ends_with("Csv") {
        "text/csv"
    } else if schema.ends_with("Stream") {
        "text/event-stream"
    } else {
        "application/json"
    }
}

fn describe(operation: &Operation) -> Value {
    let mut parameters: Vec<Value> = operation
        .path_parameters()
        .map(|name| {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect();
    parameters.extend(operation.query.iter().map(|(name, meaning)| {
        json!({"name": name, "in": "query", "required": false, "description": meaning,
               "schema": {"type": "string"}})
    }));
    let mut headers: Vec<(&str, &str)> = operation.extra.headers.to_vec();
    if operation.access == Access::Tenant {
        headers.push(ACT_FOR_TENANT);
    }
    parameters.extend(headers.iter().map(|(name, meaning)| {
        json!({"name": name, "in": "header", "required": false, "description": meaning,
               "schema": {"type": "string"}})
    }));
    let mut responses = Map::new();
    let (status, body) = operation.success;
    responses.insert(status.to_string(), success(status, body, "Success"));
    for &(status, body, meaning) in operation.extra.also {
        responses.insert(status.to_string(), success(status, Some(body), meaning));
    }
    for status in operation.error_statuses() {
        responses.insert(
            status.to_string(),
            json!({"description": error_meaning(status),
                "content": {"application/json": {"schema": schema_ref("Error")}}}),
        );
    }
    let mut described = json!({
        "operationId": operation.name,
        "tags": [operation.tag],
        "summary": operation.summary,
        "parameters": parameters,
        "responses": responses,
    });
    described["security"] = match operation.access {
        Access::Tenant => json!([{"tenantKey": []}]),
        Access::Admin => json!([{"adminToken": []}]),
        Access::Any => json!([{"tenantKey": []}, {"adminToken": []}]),
        Access::Signed | Access::Public => json!([]),
    };
    if let Some(name) = operation.body {
        let mut content = Map::new();
        content.insert(
            "application/json".into(),
            json!({"schema": schema_ref(name)}),
        );
        for (media, schema) in operation.extra.body_types {
            content.insert((*media).into(), json!({"schema": schema_ref(schema)}));
        }
        described["requestBody"] = json!({"required": !operation.extra.body_optional,
            "content": content});
    }
    described
}

/// What the admin token sends to act for a tenant, on every tenant route.
const ACT_FOR_TENANT: (&str, &str) = (
    "Herald-Tenant",
    "With the admin token only: the id of the tenant to act for (the answer is what that \
     tenant's key would get)",
);

/// A success answer, with the headers it carries: `Location` for what it created (a 201, or
/// a delivery followed as its execution), `ETag` on an action (what `If-Match` takes).
fn success(status: u16, body: Option<&str>, meaning: &str) -> Value {
    let mut answer = json!({"description": meaning});
    if let Some(name) = body {
        answer["content"] = json!({media_type(name): {"schema": schema_ref(name)}});
    }
    let mut headers = Map::new();
    if status == 201 || body == Some("DeliveryAccepted") {
        headers.insert(
            "Location".into(),
            json!({"description": "The path of what was created",
                "schema": {"type": "string"}}),
        );
    }
    if body == Some("Action") {
        headers.insert(
            "ETag".into(),
            json!({"description": "The action's revision, quoted: send it back in If-Match",
                "schema": {"type": "string"}}),
        );
    }
    if !headers.is_empty() {
        answer["headers"] = Value::Object(headers);
    }
    answer
}

fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => "The body is not valid JSON, or not the expected structure",
        401 => "Missing or wrong credentials (or, for provider hooks, signature)",
        403 => {
            "Valid credentials of the wrong kind (the admin token on tenant data, or a \
                tenant key on tenant management)"
        }
        404 => "No such resource for this tenant",
        409 => "Conflicts with the current state (a taken name, an unfinished execution)",
        412 => "If-Match named a revision the resource has moved on from",
        413 => "Body, batch or metadata larger than allowed",
        415 => "Content type not accepted",
        422 => "A field or parameter is invalid; the message names it",
        429 => "Over the tenant's request rate; see Retry-After",
        503 => "A dependency is unavailable, or delivery is behind (`overloaded`); see Retry-After",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_schema_exists() {
        let text = document_text();
        let schemas = document()["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for reference in text.split("#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(
                schemas.contains_key(name),
                "schema {name} is referenced but missing"
            );
        }
    }

    #[test]
    fn operation_names_and_routes_are_unique() {
        let mut names: Vec<&str> = OPERATIONS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "operationIds must be unique");
        let mut routes: Vec<String> = OPERATIONS
            .iter()
            .map(|o| format!("{} {}", o.method, o.path))
            .collect();
        routes.sort();
        let before = routes.len();
        routes.dedup();
        assert_eq!(routes.len(), before, "each method and path once");
    }

    /// The committed document is what the code generates: regenerate it with
    /// `cargo xtask openapi` after changing an operation or a schema.
    #[test]
    fn the_committed_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(COMMITTED_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == document_text(),
            "{} is out of date: run `cargo xtask openapi` and commit it",
            path.display()
        );
    }
}
