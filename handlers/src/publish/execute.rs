//! Publishing the chained event. Its id is the execution's, so a repeated attempt (a
//! redelivered job) is the same event and is stored once.

use herald_common::broker::Outgoing;
use herald_common::status::ErrorKind;
use tokio::time::Instant;

use super::{CHAIN_DEPTH_KEY, MAX_CHAIN_DEPTH, PublishSpec};
use crate::attempt::{Delivered, Performed};
use crate::context::Context;
use crate::outcome::Verdict;

pub async fn execute(handler: &PublishSpec, ctx: &Context<'_>) -> Performed {
    let started = Instant::now();
    let job = ctx.job;
    let target = format!("publish:{}", handler.event_type);
    let Some(publisher) = ctx.publisher else {
        return Performed::failed(
            target,
            ErrorKind::Publish,
            "nothing may be published here".into(),
            started.elapsed(),
        );
    };
    let depth = job
        .event
        .metadata
        .get(CHAIN_DEPTH_KEY)
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    if depth > MAX_CHAIN_DEPTH {
        let message = format!(
            "event {} is already {} publish actions deep (at most {MAX_CHAIN_DEPTH})",
            job.event.id.as_str(),
            depth - 1
        );
        return Performed::failed(target, ErrorKind::ChainTooDeep, message, started.elapsed());
    }
    let mut metadata = job.event.metadata.clone();
    metadata.insert(CHAIN_DEPTH_KEY.into(), depth.to_string());
    metadata.insert("herald_parent_event".into(), job.event.id.as_str().into());
    let id = job.delivery_id();
    let body = serde_json::json!({
        "tenant_id": job.tenant_id.to_string(),
        "id": id,
        "type": handler.event_type,
        "source": handler.source.as_deref().or(job.event.source.as_deref()),
        "data": serde_json::value::RawValue::from_string(job.event.data.as_str().to_owned())
            .ok(),
        "metadata": metadata,
    });
    let outgoing = Outgoing::json_event(
        handler.event_type.as_str(),
        body.to_string().into_bytes(),
        &id,
    );
    match publisher.publish(&outgoing).await {
        Ok(()) => Performed {
            target,
            delivered: Delivered::done(Some(format!("published event {id}")), started.elapsed()),
            verdict: Verdict::Success,
        },
        Err(error) => Performed::failed(
            target,
            ErrorKind::Publish,
            error.to_string(),
            started.elapsed(),
        ),
    }
}
