//! The actions API beyond one action's life: updates by merge patch, listing by filter with
//! cursor paging, a whole set applied by name (actions as code), and the test route (dry-run
//! explanation, and one real delivery with `send`); and the audit listing of the executions
//! actions leave, by each of its filters.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SECRET, verify_with_reference_library, webhook_action};

async fn call(
    sandbox: &Sandbox,
    tenant: &TestTenant,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    sandbox.call(method, path, Some(&tenant.key), body).await
}

async fn patch(sandbox: &Sandbox, tenant: &TestTenant, path: &str, body: Value) -> (u16, Value) {
    call(sandbox, tenant, Method::PATCH, path, Some(body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_is_validated_whole_keeps_the_secret_and_is_live_at_once() {
    let sandbox = Sandbox::start().await;
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let tenant = sandbox.tenant().await;
    let action = sandbox
        .action(
            &tenant,
            webhook_action("hook", "order.paid", &first.url("/"), json!({})),
        )
        .await;
    let other = sandbox
        .action(
            &tenant,
            webhook_action("other", "other.thing", &first.url("/"), json!({})),
        )
        .await;
    let path = format!("/v1/actions/{}", action["id"].as_str().expect("id"));

    let (status, patched) = patch(
        &sandbox,
        &tenant,
        &path,
        json!({"event_types": ["order.*"], "handler": {"url": second.url("/moved")},
               "description": "moved"}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["event_types"], json!(["order.*"]));
    assert_eq!(patched["handler"]["url"], second.url("/moved"));
    assert_eq!(
        patched["revision"].as_i64(),
        action["revision"].as_i64().map(|r| r + 1)
    );
    // Live without a restart, and still signed with the secret given at creation.
    eventually("the moved webhook", Duration::from_secs(20), || async {
        sandbox
            .event(&tenant, json!({"type": "order.shipped"}))
            .await;
        (second.count() > 0).then_some(())
    })
    .await;
    verify_with_reference_library(&second.received()[0], SECRET).expect("signed as before");

    // A patch that makes the action invalid changes nothing.
    let revision = patched["revision"].clone();
    for (body, code) in [
        (
            json!({"conditions": [{"path": "data.x", "op": "gt", "value": "ten"}]}),
            "invalid_action",
        ),
        (json!({"event_types": []}), "invalid_action"),
        (json!({"surprise": 1}), "invalid_action"),
        (json!({"name": null}), "invalid_action"),
        (json!(["not", "an", "object"]), "invalid_action"),
        (json!({"name": "other"}), "name_taken"),
    ] {
        let (status, answer) = patch(&sandbox, &tenant, &path, body.clone()).await;
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(status == 422 || status == 409, "{body}: {status}");
    }
    let (_, unchanged) = call(&sandbox, &tenant, Method::GET, &path, None).await;
    assert_eq!(unchanged["revision"], revision);
    assert_eq!(unchanged["description"], "moved");

    // Optimistic concurrency: a stale If-Match is refused.
    let stale = sandbox
        .http_request(Method::PATCH, &path, &tenant.key)
        .header("if-match", "\"1\"")
        .json(&json!({"priority": "high"}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(stale.status().as_u16(), 412);
    let fresh = sandbox
        .http_request(Method::PATCH, &path, &tenant.key)
        .header("if-match", format!("\"{revision}\""))
        .json(&json!({"priority": "high"}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(fresh.status().as_u16(), 200);

    // Another tenant's key finds nothing to patch.
    let stranger = sandbox.tenant().await;
    let (status, _) = patch(&sandbox, &stranger, &path, json!({"priority": 1})).await;
    assert_eq!(status, 404);
    let _ = other;
    sandbox.stop().await;
}

fn names(listing: &Value) -> Vec<String> {
    listing["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn actions_are_listed_by_filter_and_by_page() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let url = "https://example.com/hook";
    for (name, types, description, handler, enabled) in [
        (
            "a-exact",
            json!(["order.paid"]),
            "billing team",
            json!({"type": "webhook", "url": url}),
            true,
        ),
        (
            "b-star",
            json!(["order.*"]),
            "",
            json!({"type": "webhook", "url": url}),
            true,
        ),
        (
            "c-hash",
            json!(["#"]),
            "audit log",
            json!({"type": "log"}),
            true,
        ),
        (
            "d-tail",
            json!(["order.#"]),
            "",
            json!({"type": "log"}),
            false,
        ),
        (
            "e-users",
            json!(["user.*", "#.created"]),
            "Billing 50%_off",
            json!({"type": "webhook", "url": url}),
            true,
        ),
    ] {
        sandbox
            .action(
                &tenant,
                json!({"name": name, "event_types": types, "description": description,
                       "handler": handler, "enabled": enabled}),
            )
            .await;
    }
    let deleted = sandbox
        .action(
            &tenant,
            json!({"name": "f-gone", "event_types": ["order.paid"], "handler": {"type": "log"}}),
        )
        .await;
    let (status, _) = call(
        &sandbox,
        &tenant,
        Method::DELETE,
        &format!("/v1/actions/{}", deleted["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Someone else's actions never show.
    let stranger = sandbox.tenant().await;
    sandbox
        .action(
            &stranger,
            json!({"name": "a-stranger", "event_types": ["#"], "handler": {"type": "log"}}),
        )
        .await;

    for (query, expected) in [
        ("", vec!["a-exact", "b-star", "c-hash", "d-tail", "e-users"]),
        (
            "?include_deleted=true",
            vec!["a-exact", "b-star", "c-hash", "d-tail", "e-users", "f-gone"],
        ),
        ("?enabled=false", vec!["d-tail"]),
        ("?handler_type=log", vec!["c-hash", "d-tail"]),
        (
            "?event_type=order.paid",
            vec!["a-exact", "b-star", "c-hash", "d-tail"],
        ),
        ("?event_type=order", vec!["c-hash", "d-tail"]),
        ("?event_type=order.paid.late", vec!["c-hash", "d-tail"]),
        (
            "?event_type=account.user.created",
            vec!["c-hash", "e-users"],
        ),
        ("?event_type=user.x", vec!["c-hash", "e-users"]),
        ("?q=BILLING", vec!["a-exact", "e-users"]),
        ("?q=50%25_", vec!["e-users"]),
        ("?q=-hash", vec!["c-hash"]),
        (
            "?handler_type=webhook&enabled=true&event_type=order.paid",
            vec!["a-exact", "b-star"],
        ),
    ] {
        let (status, listing) = call(
            &sandbox,
            &tenant,
            Method::GET,
            &format!("/v1/actions{query}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{query}: {listing}");
        assert_eq!(names(&listing), expected, "{query}");
    }

    // Pages of two, in name order, cover everything once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("/v1/actions?limit=2&include_deleted=true&cursor={c}"),
            None => "/v1/actions?limit=2&include_deleted=true".to_owned(),
        };
        let (status, page) = call(&sandbox, &tenant, Method::GET, &query, None).await;
        assert_eq!(status, 200, "{page}");
        assert!(names(&page).len() <= 2);
        seen.extend(names(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["a-exact", "b-star", "c-hash", "d-tail", "e-users", "f-gone"]
    );

    for query in [
        "?enabled=yes",
        "?handler_type=carrier_pigeon",
        "?event_type=a..b",
        "?limit=0",
        "?cursor=%25%25",
        "?sort=name",
    ] {
        let (status, answer) = call(
            &sandbox,
            &tenant,
            Method::GET,
            &format!("/v1/actions{query}"),
            None,
        )
        .await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_parameter", "{query}");
    }
    sandbox.stop().await;
}

fn report_of(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {report}"))
        .iter()
        .map(|n| n.as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_set_is_applied_by_name_all_or_nothing() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    // As a repository would keep them: no secrets in the file.
    let hook = |name: &str, event_type: &str| {
        json!({"name": name, "event_types": [event_type],
               "handler": {"type": "webhook", "url": receiver.url(&format!("/{name}"))}})
    };
    let put = |set: Value| {
        let sandbox = &sandbox;
        let tenant = &tenant;
        async move { call(sandbox, tenant, Method::PUT, "/v1/actions", Some(set)).await }
    };

    let (status, report) =
        put(json!({"actions": [hook("alpha", "a.x"), hook("beta", "b.x")]})).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report_of(&report, "created"), ["alpha", "beta"]);
    // Live at once.
    eventually("alpha's webhook", Duration::from_secs(20), || async {
        sandbox.event(&tenant, json!({"type": "a.x"})).await;
        (receiver.count() > 0).then_some(())
    })
    .await;

    // The same set again changes nothing, although it gives no secrets.
    let (_, report) = put(json!({"actions": [hook("alpha", "a.x"), hook("beta", "b.x")]})).await;
    assert_eq!(report_of(&report, "unchanged"), ["alpha", "beta"]);
    assert!(report_of(&report, "updated").is_empty());

    // beta is soft-deleted by hand: the set leaves it alone.
    let (_, listing) = call(&sandbox, &tenant, Method::GET, "/v1/actions?q=beta", None).await;
    let beta = listing["data"][0]["id"].as_str().expect("beta").to_owned();
    call(
        &sandbox,
        &tenant,
        Method::DELETE,
        &format!("/v1/actions/{beta}"),
        None,
    )
    .await;
    let (status, report) = put(json!({"actions": [
        hook("alpha", "a.changed"), hook("beta", "b.x"), hook("gamma", "c.x")]}))
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report_of(&report, "updated"), ["alpha"]);
    assert_eq!(report_of(&report, "skipped_deleted"), ["beta"]);
    assert_eq!(report_of(&report, "created"), ["gamma"]);
    let (_, alpha) = call(&sandbox, &tenant, Method::GET, "/v1/actions?q=alpha", None).await;
    assert_eq!(alpha["data"][0]["event_types"], json!(["a.changed"]));

    // A bad action anywhere refuses the whole set.
    for (set, status, code) in [
        (
            json!({"actions": [hook("delta", "d.x"), {"name": "broken", "event_types": ["x"]}]}),
            422,
            "invalid_action",
        ),
        (
            json!({"actions": [hook("delta", "d.x"), hook("delta", "d.y")]}),
            422,
            "duplicate_name",
        ),
        (
            json!({"actions": [hook("delta", "d.x")], "mode": "replace"}),
            400,
            "invalid_json",
        ),
        (json!([hook("delta", "d.x")]), 400, "invalid_json"),
    ] {
        let (got, answer) = put(set.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{set}: {answer}"
        );
    }
    let (_, listing) = call(&sandbox, &tenant, Method::GET, "/v1/actions?q=delta", None).await;
    assert_eq!(
        names(&listing),
        Vec::<String>::new(),
        "nothing of a refused set is stored"
    );

    // With prune, live actions the set does not name are soft-deleted.
    let (_, report) = put(json!({"actions": [hook("gamma", "c.x")], "prune": true})).await;
    assert_eq!(report_of(&report, "unchanged"), ["gamma"]);
    assert_eq!(report_of(&report, "deleted"), ["alpha"]);
    let (_, listing) = call(&sandbox, &tenant, Method::GET, "/v1/actions", None).await;
    assert_eq!(names(&listing), ["gamma"]);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_explains_the_match_and_can_send_one_real_delivery() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let mut spec = webhook_action("big-orders", "order.*", &receiver.url("/test"), json!({}));
    spec["conditions"] = json!([{"path": "data.amount", "op": "gt", "value": 100}]);
    let action = sandbox.action(&tenant, spec).await;
    let path = format!("/v1/actions/{}/test", action["id"].as_str().expect("id"));

    let (status, small) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &path,
        Some(json!({"event": {"type": "order.paid", "data": {"amount": 50}}})),
    )
    .await;
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["matched"], false);
    assert_eq!(small["event_type"]["held"], true);
    assert_eq!(small["conditions"][0]["held"], false);
    assert!(small.get("delivery").is_none(), "a dry run sends nothing");

    let (status, big) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &path,
        Some(json!({"event": {"type": "order.paid", "data": {"amount": 500}}, "send": true})),
    )
    .await;
    assert_eq!(status, 200, "{big}");
    assert_eq!(big["matched"], true);
    let delivery = &big["delivery"];
    assert_eq!(delivery["outcome"], "succeeded", "{delivery}");
    assert_eq!(delivery["response_status"], 200);
    assert_eq!(receiver.count(), 1);
    let received = &receiver.received()[0];
    assert_eq!(
        received.header("webhook-id"),
        delivery["webhook_id"].as_str().unwrap()
    );
    verify_with_reference_library(received, SECRET).expect("a test delivery is signed");
    assert_eq!(received.json()["data"]["amount"], 500);

    // A test delivery is not an execution: nothing is recorded.
    let (_, executions) = call(
        &sandbox,
        &tenant,
        Method::GET,
        &format!(
            "/v1/executions?action_id={}",
            action["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(executions["data"], json!([]));

    // A failing receiver is reported as the executor would see it.
    receiver.fallback(herald_tests::receiver::Reply::status(503));
    let (_, failing) = call(
        &sandbox,
        &tenant,
        Method::POST,
        &path,
        Some(json!({"event": {"type": "order.paid"}, "send": true})),
    )
    .await;
    assert_eq!(failing["matched"], false, "no amount: the condition fails");
    assert_eq!(failing["delivery"]["outcome"], "would_retry");
    assert_eq!(failing["delivery"]["response_status"], 503);

    let log = sandbox
        .action(
            &tenant,
            json!({"name": "log", "event_types": ["#"], "handler": {"type": "log"}}),
        )
        .await;
    let log_test = format!("/v1/actions/{}/test", log["id"].as_str().unwrap());
    for (path, body, status, code) in [
        (
            &path,
            json!({"event": {"data": {}}}),
            422,
            "missing_event_type",
        ),
        (
            &path,
            json!({"event": {"type": "a..b"}}),
            422,
            "invalid_event_type",
        ),
        (&path, json!({"send": true}), 400, "invalid_json"),
        (
            &log_test,
            json!({"event": {"type": "x"}, "send": true}),
            422,
            "not_sendable",
        ),
        (
            &"/v1/actions/act_unknown/test".to_owned(),
            json!({"event": {"type": "x"}}),
            404,
            "not_found",
        ),
    ] {
        let (got, answer) = call(&sandbox, &tenant, Method::POST, path, Some(body.clone())).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    sandbox.stop().await;
}

/// Ids of the executions a listing answers, all pages of it.
async fn listed(sandbox: &Sandbox, tenant: &TestTenant, query: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut path = format!("/v1/executions?limit=2&{query}");
    loop {
        let (status, page) = call(sandbox, tenant, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{query}: {page}");
        for execution in page["data"].as_array().expect("data") {
            ids.insert(execution["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let cursor = urlencoding::encode(cursor);
                path = format!("/v1/executions?limit=2&{query}&cursor={cursor}");
            }
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_executions_listing_returns_exactly_what_each_filter_selects() {
    let sandbox = Sandbox::start().await;
    let (ok, refusing) = (Receiver::start().await, Receiver::start().await);
    refusing.fallback(herald_tests::receiver::Reply::status(400));
    let tenant = sandbox.tenant().await;
    let alpha = sandbox
        .action(
            &tenant,
            webhook_action("alpha", "order.paid", &ok.url("/"), json!({})),
        )
        .await;
    let beta = sandbox
        .action(
            &tenant,
            webhook_action("beta", "order.paid", &refusing.url("/"), json!({})),
        )
        .await;
    let (alpha, beta) = (
        alpha["id"].as_str().expect("id").to_owned(),
        beta["id"].as_str().expect("id").to_owned(),
    );

    // Three events, each matched by both actions: alpha's executions succeed, beta's fail. The
    // window splits them: two events before `middle`, one after.
    let mut all = Vec::new();
    let mut middle = None;
    for n in 0..3 {
        if n == 2 {
            middle = Some(chrono::Utc::now());
        }
        let event = sandbox
            .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        for execution in sandbox
            .terminal_executions(&tenant, &event, 2, Duration::from_secs(30))
            .await
        {
            all.push((event.clone(), execution));
        }
    }
    let middle = middle
        .expect("a middle")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let events: Vec<String> = all.iter().step_by(2).map(|(e, _)| e.clone()).collect();
    let expected = |keep: &dyn Fn(&str, &Value) -> bool| -> BTreeSet<String> {
        all.iter()
            .filter(|(event, execution)| keep(event, execution))
            .map(|(_, execution)| execution["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let of_action = |a: &str, e: &Value| e["action_id"] == a;
    let late = |event: &str| event == events[2];

    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (
            format!("action_id={alpha}"),
            expected(&|_, e| of_action(&alpha, e)),
        ),
        (
            format!("action_id={beta}"),
            expected(&|_, e| of_action(&beta, e)),
        ),
        (
            format!("event_id={}", events[1]),
            expected(&|ev, _| ev == events[1]),
        ),
        (
            format!("event_id={}&action_id={beta}", events[1]),
            expected(&|ev, e| ev == events[1] && of_action(&beta, e)),
        ),
        (format!("since={middle}"), expected(&|ev, _| late(ev))),
        (format!("until={middle}"), expected(&|ev, _| !late(ev))),
        (
            format!("since=2020-01-01T00:00:00Z&until={middle}"),
            expected(&|ev, _| !late(ev)),
        ),
        (
            "status=failed".into(),
            expected(&|_, e| of_action(&beta, e)),
        ),
        (
            format!("status=succeeded&action_id={alpha}"),
            expected(&|_, e| of_action(&alpha, e)),
        ),
        (format!("status=failed&action_id={alpha}"), BTreeSet::new()),
        (
            format!("status=failed&since={middle}"),
            expected(&|ev, e| late(ev) && of_action(&beta, e)),
        ),
        (
            format!("status=succeeded&event_id={}", events[0]),
            expected(&|ev, e| ev == events[0] && of_action(&alpha, e)),
        ),
        (
            format!("status=succeeded&action_id={alpha}&until={middle}"),
            expected(&|ev, e| !late(ev) && of_action(&alpha, e)),
        ),
        ("event_id=no-such-event".into(), BTreeSet::new()),
    ];
    assert_eq!(all.len(), 6);
    for (query, want) in &cases {
        let got = listed(&sandbox, &tenant, query).await;
        assert_eq!(&got, want, "{query}");
    }
    // Every case above selects something else: a filter that were ignored would show.
    assert!(cases.iter().all(|(_, want)| want.len() < all.len()));
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_headers_are_masked_in_every_read_and_still_sent() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    let tenant = sandbox.tenant().await;
    let credentials = [
        ("authorization", "Bearer s3cret-bearer"),
        ("proxy-authorization", "Basic s3cret-proxy"),
        ("cookie", "session=s3cret-cookie"),
        ("x-api-key", "s3cret-api-key"),
        ("x-auth-token", "s3cret-token"),
        ("x-client-secret", "s3cret-client"),
        ("x-db-password", "s3cret-password"),
    ];
    let mut headers: serde_json::Map<String, Value> = credentials
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    headers.insert("x-team".into(), json!("billing"));
    let mut spec = webhook_action("hook", "order.paid", &receiver.url("/"), json!({}));
    spec["handler"]["headers"] = Value::Object(headers);
    let created = sandbox.action(&tenant, spec.clone()).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/actions/{id}");

    // What every read shows: the mask for each credential, the rest as sent.
    let assert_masked = |what: &str, action: &Value| {
        let shown = &action["handler"]["headers"];
        for (name, _) in credentials {
            assert_eq!(shown[name], "***", "{what}: {name} in {shown}");
        }
        assert_eq!(shown["x-team"], "billing", "{what}");
        assert!(!action.to_string().contains("s3cret"), "{what}: {action}");
    };
    assert_masked("the creation answer", &created);
    let (_, got) = call(&sandbox, &tenant, Method::GET, &path, None).await;
    assert_masked("GET", &got);
    let (_, listed) = call(&sandbox, &tenant, Method::GET, "/v1/actions", None).await;
    assert_masked("the list", &listed["data"][0]);
    let (status, patched) = patch(&sandbox, &tenant, &path, json!({"description": "d"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_masked("the patch answer", &patched);

    // A read's answer written back as it is (the console's edit form, a GET then PATCH, or an
    // action set kept from a GET) keeps the stored values. (Signing secrets are left out:
    // they are kept when a write names none.)
    let mut handler = got["handler"].clone();
    handler.as_object_mut().expect("handler").remove("secrets");
    let (status, patched) = patch(&sandbox, &tenant, &path, json!({"handler": handler})).await;
    assert_eq!(status, 200, "{patched}");
    let mut kept = got.clone();
    kept.as_object_mut().expect("object").retain(|k, _| {
        [
            "name",
            "event_types",
            "handler",
            "retry",
            "description",
            "priority",
        ]
        .contains(&k.as_str())
    });
    kept["handler"]
        .as_object_mut()
        .expect("handler")
        .remove("secrets");
    kept["description"] = json!("d");
    let (status, report) = call(
        &sandbox,
        &tenant,
        Method::PUT,
        "/v1/actions",
        Some(json!({"actions": [kept]})),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["unchanged"], json!(["hook"]), "{report}");
    assert!(!report.to_string().contains("s3cret"));

    // And the webhook still carries every stored value.
    let event = sandbox
        .event(&tenant, json!({"type": "order.paid", "data": {}}))
        .await;
    eventually("the webhook", Duration::from_secs(20), || async {
        (receiver.count() == 1).then_some(())
    })
    .await;
    let webhook = &receiver.received()[0];
    for (name, value) in credentials {
        assert_eq!(webhook.header(name), value, "{name}");
    }
    assert_eq!(webhook.header("x-team"), "billing");
    let view = sandbox.event_view(&tenant, &event).await;
    assert!(!view.to_string().contains("s3cret"), "{view}");

    // The mask stands for a stored value: where there is none, it is refused.
    let mut masked = spec.clone();
    masked["name"] = json!("masked");
    masked["handler"]["headers"] = json!({"authorization": "***"});
    let (status, refused) = sandbox.try_action(&tenant, masked.clone()).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("handler.headers.authorization")),
        "{refused}"
    );
    let (status, refused) = call(
        &sandbox,
        &tenant,
        Method::PUT,
        "/v1/actions",
        Some(json!({"actions": [masked]})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let (status, refused) = patch(
        &sandbox,
        &tenant,
        &path,
        json!({"handler": {"headers": {"x-new-key": "***"}}}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    sandbox.stop().await;
}
