//! Writing the event to the log.

use std::time::Duration;

use super::{LogLevel, LogSpec};
use crate::attempt::{Delivered, Performed};
use crate::context::Context;
use crate::outcome::Verdict;

pub async fn execute(handler: &LogSpec, ctx: &Context<'_>) -> Performed {
    let job = ctx.job;
    let event = &job.event;
    let (id, event_type, data) = (
        event.id.as_str(),
        event.event_type.as_str(),
        event.data.as_str(),
    );
    let source = event.source.as_deref().unwrap_or("");
    match handler.level {
        LogLevel::Info => tracing::info!(
            target: "herald::action",
            tenant = %job.tenant_id, action = %job.action_id, execution = %job.execution_id,
            event = id, event_type, source, data, "log action"
        ),
        LogLevel::Warn => tracing::warn!(
            target: "herald::action",
            tenant = %job.tenant_id, action = %job.action_id, execution = %job.execution_id,
            event = id, event_type, source, data, "log action"
        ),
    }
    Performed {
        target: "log".into(),
        delivered: Delivered::done(None, Duration::ZERO),
        verdict: Verdict::Success,
    }
}
