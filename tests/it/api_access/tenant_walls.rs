//! A tenant's key reaches its own tenant and nothing else, however it asks: naming another
//! tenant in `Herald-Tenant` changes nothing (only the admin token acts for a named tenant;
//! `auth.rs` ignores the header for a tenant key), and another tenant's ids used as filters
//! select nothing of that tenant's.

use herald_tests::{Receiver, Sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use super::fixtures::owned;
use crate::support::webhook_action;

/// `method path` with `key`, naming `acting_for` in `Herald-Tenant` when given; the answer as
/// JSON, or as a string when it is not JSON (CSV).
async fn call(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    key: &str,
    acting_for: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = sandbox.http_request(method, path, key);
    if let Some(tenant) = acting_for {
        request = request.header("herald-tenant", tenant);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Sandbox::answer(request).await
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .expect("a page")
        .iter()
        .filter_map(|item| item["id"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_key_naming_another_tenant_still_acts_for_its_own() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let a = owned(&sandbox, &receiver).await;
    let b = &a.stranger;
    let names_a = Some(a.tenant.id.as_str());

    // Ignored, not refused: whatever B names, B is who it is.
    for named in [names_a, Some("not-a-tenant"), Some(b.id.as_str())] {
        let (status, whoami) = call(&sandbox, Method::GET, "/v1/whoami", &b.key, named, None).await;
        assert_eq!(status, 200, "{named:?}: {whoami}");
        assert_eq!(whoami["tenant"]["id"], json!(b.id), "{named:?}: {whoami}");
    }

    let a_action = format!("/v1/actions/{}", a.ids["action"]);
    let (status, answer) = call(&sandbox, Method::GET, &a_action, &b.key, names_a, None).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = call(&sandbox, Method::DELETE, &a_action, &b.key, names_a, None).await;
    assert_eq!(status, 404, "{answer}");
    let (status, action) = sandbox
        .call(Method::GET, &a_action, Some(&a.tenant.key), None)
        .await;
    assert_eq!(
        (status, &action["deleted_at"]),
        (200, &Value::Null),
        "{action}"
    );

    // What B creates while naming A is B's.
    let spec = webhook_action("b-naming-a", "b.thing", &receiver.url("/"), json!({}));
    let (status, created) = call(
        &sandbox,
        Method::POST,
        "/v1/actions",
        &b.key,
        names_a,
        Some(spec),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["tenant_id"], json!(b.id), "{created}");
    let path = format!("/v1/actions/{}", created["id"].as_str().expect("id"));
    let (status, _) = sandbox
        .call(Method::GET, &path, Some(&a.tenant.key), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = sandbox.call(Method::GET, &path, Some(&b.key), None).await;
    assert_eq!(status, 200);

    // And what it lists is B's alone.
    let (status, page) = call(&sandbox, Method::GET, "/v1/actions", &b.key, names_a, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), [created["id"].as_str().expect("id")], "{page}");
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_ids_as_filters_select_nothing_of_its() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let a = owned(&sandbox, &receiver).await;
    let b = &a.stranger;
    let execution = a.ids["execution"].as_str();

    for filter in [
        format!("action_id={}", a.ids["action"]),
        format!("event_id={}", a.ids["event"]),
    ] {
        let listing = format!("/v1/executions?{filter}");
        let export = format!("/v1/executions/export?{filter}");
        // The filter does select A's execution, for A.
        let (status, page) = call(&sandbox, Method::GET, &listing, &a.tenant.key, None, None).await;
        assert_eq!(
            (status, ids(&page)),
            (200, vec![execution]),
            "{listing}: {page}"
        );
        let (status, csv) = call(&sandbox, Method::GET, &export, &a.tenant.key, None, None).await;
        assert_eq!(status, 200, "{export}: {csv}");
        assert!(
            csv.as_str().expect("CSV").contains(execution),
            "{export}: {csv}"
        );

        // For B, with or without naming A: an empty page, and a CSV of its header alone.
        for named in [None, Some(a.tenant.id.as_str())] {
            let what = format!("B naming {named:?}");
            let (status, page) = call(&sandbox, Method::GET, &listing, &b.key, named, None).await;
            assert_eq!(
                (status, &page["data"]),
                (200, &json!([])),
                "{what} {listing}: {page}"
            );
            let (status, csv) = call(&sandbox, Method::GET, &export, &b.key, named, None).await;
            assert_eq!(status, 200, "{what} {export}: {csv}");
            let csv = csv.as_str().expect("CSV");
            assert_eq!(csv.lines().count(), 1, "{what} {export}: {csv}");
        }
    }

    let stats = format!("/v1/actions/{}/stats", a.ids["action"]);
    let (status, answer) = call(&sandbox, Method::GET, &stats, &a.tenant.key, None, None).await;
    assert_eq!(
        (status, &answer["executions"]["total"]),
        (200, &json!(1)),
        "{answer}"
    );
    for named in [None, Some(a.tenant.id.as_str())] {
        let (status, answer) = call(&sandbox, Method::GET, &stats, &b.key, named, None).await;
        assert_eq!(status, 404, "B naming {named:?}: {answer}");
    }

    // A retry by A's filter, asked by B, reopens nothing of A's; asked by A, it does.
    let filter = json!({"status": "failed", "action_id": a.ids["action"]});
    for (key, reopened) in [(&b.key, 0), (&a.tenant.key, 1)] {
        let done = sandbox.bulk_retry_to_the_end(key, filter.clone()).await;
        assert_eq!(done["retried"], json!(reopened), "{done}");
        if reopened == 0 {
            let (_, view) = sandbox
                .call(
                    Method::GET,
                    &format!("/v1/executions/{execution}"),
                    Some(&a.tenant.key),
                    None,
                )
                .await;
            assert_eq!(view["status"], "failed", "{view}");
        }
    }
    sandbox.stop().await;
}
