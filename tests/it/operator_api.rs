//! What the operator console stands on, checked through the API: who a credential is, the
//! admin token acting for a tenant it names, the overview and its live stream, and the CSV
//! export of executions.

use std::time::Duration;

use herald_tests::sandbox::TestTenant;
use herald_tests::{Receiver, Reply, Sandbox};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_acts_only_for_a_tenant_it_names_and_that_exists() {
    let sandbox = Sandbox::start().await;
    let tenant = sandbox.tenant().await;
    let admin = sandbox.admin_token();

    let (status, who) = sandbox
        .call(Method::GET, "/v1/whoami", Some(admin), None)
        .await;
    assert_eq!((status, who.clone()), (200, json!({"role": "admin"})));
    let (status, who) = sandbox
        .call(Method::GET, "/v1/whoami", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(who["role"], "tenant");
    assert_eq!(who["tenant"]["id"], tenant.id.as_str());

    let (status, listed) = sandbox
        .call(Method::GET, "/v1/tenants", Some(admin), None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|t| t["id"] == tenant.id.as_str()),
        "{listed}"
    );

    let acting = |named: &str| {
        sandbox
            .http_request(Method::GET, "/v1/overview", admin)
            .header("herald-tenant", named.to_owned())
    };
    let answer = acting(&tenant.id).send().await.expect("ingest");
    assert_eq!(answer.status(), 200);
    for unknown in ["ten_01m8k75kx5e6asqz3qvpdg1gxy", "not-a-tenant", ""] {
        let answer = acting(unknown).send().await.expect("ingest");
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.expect("json");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{unknown:?}: {body}"
        );
    }
    let (status, body) = sandbox
        .call(Method::GET, "/v1/overview", Some(admin), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Herald-Tenant")),
        "{body}"
    );
    sandbox.stop().await;
}

/// A tenant with one webhook action on `order.paid` that makes a single attempt, so that
/// every delivery ends as the receiver answers.
async fn one_attempt_hook(sandbox: &Sandbox, receiver: &Receiver) -> TestTenant {
    let tenant = sandbox.tenant().await;
    sandbox
        .action(
            &tenant,
            webhook_action(
                "hook",
                "order.paid",
                &receiver.url("/"),
                json!({"max_attempts": 1}),
            ),
        )
        .await;
    tenant
}

/// Reads server-sent events from `response` until one named `overview` arrives.
async fn next_overview(response: &mut reqwest::Response, buffer: &mut String) -> Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block.lines().any(|l| l == "event: overview") {
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data");
                return serde_json::from_str(data).expect("overview JSON");
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("an event within 20 s")
            .expect("the stream")
            .expect("the stream is open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_counts_the_last_hour_and_the_live_stream_follows_it() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200), Reply::status(400)]);
    let tenant = one_attempt_hook(&sandbox, &receiver).await;

    let mut live = sandbox
        .http_request(Method::GET, "/v1/live", &tenant.key)
        .send()
        .await
        .expect("ingest");
    assert_eq!(live.status(), 200);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    let first = next_overview(&mut live, &mut buffer).await;
    assert_eq!(first["events_last_hour"], 0, "{first}");

    for n in 0..2 {
        let id = sandbox
            .event(&tenant, json!({"type": "order.paid", "data": {"n": n}}))
            .await;
        sandbox
            .terminal_executions(&tenant, &id, 1, Duration::from_secs(30))
            .await;
    }
    // The stream says so by itself, without being asked again (each look at most 20 s off).
    let mut latest = next_overview(&mut live, &mut buffer).await;
    for _ in 0..10 {
        let executions = &latest["last_hour"]["executions"];
        if executions["failed"] == 1 && executions["succeeded"] == 1 {
            break;
        }
        latest = next_overview(&mut live, &mut buffer).await;
    }
    assert_eq!(latest["events_last_hour"], 2, "{latest}");
    assert_eq!(latest["open_circuits"], 0, "{latest}");
    assert_eq!(latest["overdue_retries"], 0, "{latest}");
    assert_eq!(latest["last_hour"]["success_rate"], 0.5, "{latest}");
    let minutes = latest["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 60);
    let counted: i64 = minutes
        .iter()
        .map(|m| m["events"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 2, "{latest}");

    let (status, polled) = sandbox
        .call(Method::GET, "/v1/overview", Some(&tenant.key), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        polled["last_hour"]["executions"],
        latest["last_hour"]["executions"]
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn executions_export_as_csv_by_filter() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::status(200), Reply::status(400), Reply::status(200)]);
    let tenant = one_attempt_hook(&sandbox, &receiver).await;
    // Ids a spreadsheet would run as formulas, and one with a comma and a quote in it.
    for id in ["=cmd|'/C'!A0", "plain", "with,\"quotes\""] {
        let event = sandbox
            .event(&tenant, json!({"id": id, "type": "order.paid"}))
            .await;
        sandbox
            .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
            .await;
    }
    let export = |query: &'static str| {
        let request = sandbox.http_request(
            Method::GET,
            &format!("/v1/executions/export{query}"),
            &tenant.key,
        );
        async move {
            let response = request.send().await.expect("ingest");
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "text/csv; charset=utf-8"
            );
            assert_eq!(response.headers()["herald-truncated"], "false");
            response.text().await.expect("body")
        }
    };
    let all = export("").await;
    let lines: Vec<&str> = all.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,event_id,action_id,status,attempts,max_attempts,created_at,updated_at,\
         finished_at,next_attempt_at,last_error"
    );
    assert_eq!(lines.len(), 4, "{all}");
    assert!(all.contains(",'=cmd|'/C'!A0,"), "{all}");
    assert!(all.contains(",\"with,\"\"quotes\"\"\","), "{all}");

    let failed = export("?status=failed").await;
    let rows: Vec<&str> = failed
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 1, "{failed}");
    assert!(rows[0].contains(",failed,"), "{failed}");

    // Another tenant's export holds none of these.
    let stranger = sandbox.tenant().await;
    let response = sandbox
        .http_request(Method::GET, "/v1/executions/export", &stranger.key)
        .send()
        .await
        .expect("ingest");
    let text = response.text().await.expect("body");
    assert_eq!(
        text.split("\r\n").filter(|l| !l.is_empty()).count(),
        1,
        "{text}"
    );
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn executions_of_every_status_page_newest_first_without_gaps() {
    let sandbox = Sandbox::start().await;
    let receiver = Receiver::start().await;
    receiver.script([
        Reply::status(200),
        Reply::status(400),
        Reply::status(200),
        Reply::status(400),
        Reply::status(200),
    ]);
    let tenant = one_attempt_hook(&sandbox, &receiver).await;
    let mut created = Vec::new();
    for n in 0..5 {
        let event = sandbox
            .event(
                &tenant,
                json!({"id": format!("e{n}"), "type": "order.paid"}),
            )
            .await;
        let executions = sandbox
            .terminal_executions(&tenant, &event, 1, Duration::from_secs(30))
            .await;
        created.push(executions[0]["id"].as_str().expect("id").to_owned());
    }
    // Statuses alternate, so every page mixes them: the listing merges one branch per status.
    let mut seen = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    let mut path = "/v1/executions?limit=2".to_owned();
    loop {
        let (status, page) = sandbox
            .call(Method::GET, &path, Some(&tenant.key), None)
            .await;
        assert_eq!(status, 200, "{page}");
        for execution in page["data"].as_array().expect("data") {
            seen.push(execution["id"].as_str().expect("id").to_owned());
            statuses.insert(execution["status"].as_str().expect("status").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/executions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each once");
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["failed", "succeeded"]
    );
    sandbox.stop().await;
}
