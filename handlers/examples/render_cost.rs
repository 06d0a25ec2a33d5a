//! What rendering one `http` request costs (its URL, a header and a five-template JSON body,
//! built as the executor builds it before sending): the mean over many renders, printed as
//! `render_us=<microseconds>`. `cargo xtask bench executor` runs it in release beside the
//! executor's figures; run it alone with
//! `cargo run --release -p herald-handlers --example render_cost`.

use std::time::Instant;

use chrono::Utc;
use herald_common::config::{Config, ServiceName};
use herald_common::event::{Event, EventId, EventType, Metadata, RawJson};
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;
use herald_handlers::{Context, Handler, Outbound};
use serde_json::json;

const RENDERS: u32 = 100_000;

fn main() -> anyhow::Result<()> {
    let action = herald_handlers::parse_action(&json!({
        "name": "render", "event_types": ["bench.delivery"],
        "handler": {"type": "http", "url": "http://127.0.0.1:9/hook", "method": "POST",
            "headers": {"x-order": "{{ event.data.n }}"},
            "body": {"data": {"n": "{{ event.data.n }}",
                              "sent_unix_ns": "{{ event.data.sent_unix_ns }}"},
                     "event": "{{ event.type }}",
                     "summary": "order {{ event.data.n }} of {{ action.name }}",
                     "id": "{{ event.id }}"}},
    }))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Handler::Http(spec) = &action.handler else {
        anyhow::bail!("not an http handler");
    };
    let tenant_id = TenantId::new();
    let job = ExecutionJob {
        step: None,
        execution_id: ExecutionId::new(),
        tenant_id,
        action_id: ActionId::new(),
        attempt: 1,
        event: Event {
            tenant_id,
            id: EventId::parse("bench-1")?,
            event_type: EventType::parse("bench.delivery")?,
            source: None,
            time: None,
            received_at: Utc::now(),
            data: RawJson::from_validated(r#"{"sent_unix_ns":1796318252000000000,"n":1}"#),
            metadata: Metadata::new(),
            trace: None,
        },
    };
    let outbound = Outbound::from_config(&Config::defaults(ServiceName::Executor).executor)?;
    let secrets = SecretValues::default();
    let context = Context {
        job: &job,
        now: Utc::now(),
        action_name: "render",
        secrets: &secrets,
        outbound: &outbound,
        publisher: None,
        steps: None,
    };
    let started = Instant::now();
    for _ in 0..RENDERS {
        let prepared =
            herald_handlers::http::prepare(spec, &context).map_err(|e| anyhow::anyhow!("{e}"))?;
        std::hint::black_box(prepared);
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(RENDERS);
    println!("render_us={us:.2}");
    Ok(())
}
