//! Sync mode: `POST /v1/events` waits for the sync actions it matched and answers with their
//! results; async actions are still queued; the wait is bounded.

use std::time::Duration;

use herald_tests::receiver::Reply;
use herald_tests::sandbox::SandboxOptions;
use herald_tests::{Receiver, Sandbox, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::webhook_action;

fn sync_action(name: &str, event_type: &str, url: &str) -> Value {
    let mut spec = webhook_action(
        name,
        event_type,
        url,
        json!({"max_attempts": 2, "delays_s": [30]}),
    );
    spec["mode"] = json!("sync");
    spec
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_event_answers_with_its_sync_results_and_queues_the_rest() {
    let sandbox = Sandbox::with(SandboxOptions {
        configure: |config| config.ingest.sync_timeout_ms = 1500,
        ..SandboxOptions::default()
    })
    .await;
    let (sync_ok, sync_down, slow, background) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    sync_down.fallback(Reply::status(503));
    slow.fallback(Reply::status(200).after(Duration::from_secs(4)));
    let tenant = sandbox.tenant().await;
    let ok = sandbox
        .action(
            &tenant,
            sync_action("a-ok", "order.paid", &sync_ok.url("/")),
        )
        .await;
    let down = sandbox
        .action(
            &tenant,
            sync_action("b-down", "order.paid", &sync_down.url("/")),
        )
        .await;
    sandbox
        .action(
            &tenant,
            webhook_action("async", "order.paid", &background.url("/"), json!({})),
        )
        .await;
    sandbox
        .action(&tenant, sync_action("slow", "order.slow", &slow.url("/")))
        .await;

    // The engine in ingest hears of new actions within moments.
    let answer = eventually("a sync answer", Duration::from_secs(20), || async {
        let (status, body) = sandbox
            .call(
                Method::POST,
                "/v1/events",
                Some(&tenant.key),
                Some(json!({"type": "order.paid"})),
            )
            .await;
        (status == 200 && body["results"].as_array().is_some_and(|r| r.len() == 2)).then_some(body)
    })
    .await;
    assert_eq!(answer["duplicate"], false);
    assert_eq!(answer["timed_out"], false, "{answer}");
    let results = answer["results"].as_array().expect("results");
    let of = |action: &Value| {
        results
            .iter()
            .find(|r| r["action_id"] == action["id"])
            .unwrap_or_else(|| panic!("{action} in {answer}"))
            .clone()
    };
    let fine = of(&ok);
    assert_eq!(fine["status"], "succeeded", "{fine}");
    assert_eq!(fine["response"]["response_status"], 200);
    assert_eq!(fine["response"]["response_body"], "ok");
    let failing = of(&down);
    assert_eq!(failing["status"], "retry_scheduled", "{failing}");
    assert_eq!(failing["response"]["response_status"], 503);
    // The async action got the event too, without holding up the answer.
    eventually("the async webhook", Duration::from_secs(20), || async {
        (background.count() > 0).then_some(())
    })
    .await;

    // The wait is bounded: a slow sync receiver answers with where it stands. (An event the
    // matcher saw before it loaded the slow action answers at once with no result: retry.)
    let (started, status, late) =
        eventually("a bounded sync wait", Duration::from_secs(20), || async {
            let started = std::time::Instant::now();
            let (status, late) = sandbox
                .call(
                    Method::POST,
                    "/v1/events",
                    Some(&tenant.key),
                    Some(json!({"type": "order.slow"})),
                )
                .await;
            (late["results"].as_array().is_some_and(|r| !r.is_empty()))
                .then_some((started, status, late))
        })
        .await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["timed_out"], true, "{late}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited {:?}",
        started.elapsed()
    );
    assert_ne!(late["results"][0]["status"], "succeeded");

    // No sync action, or a duplicate: answered at once with 202.
    let (status, plain) = sandbox
        .call(
            Method::POST,
            "/v1/events",
            Some(&tenant.key),
            Some(json!({"type": "user.created"})),
        )
        .await;
    assert_eq!(status, 202, "{plain}");
    assert!(plain.get("results").is_none());
    let event = json!({"id": "sync-once", "type": "order.paid"});
    let (first, _) = sandbox
        .call(
            Method::POST,
            "/v1/events",
            Some(&tenant.key),
            Some(event.clone()),
        )
        .await;
    assert_eq!(first, 200);
    let (again, duplicate) = sandbox
        .call(Method::POST, "/v1/events", Some(&tenant.key), Some(event))
        .await;
    assert_eq!(again, 202, "{duplicate}");
    assert_eq!(duplicate["duplicate"], true);
    sandbox.stop().await;
}
