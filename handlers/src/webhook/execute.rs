//! One webhook attempt: build, sign, send through the guarded client, classify the answer.

use std::time::Duration;

use herald_common::status::ErrorKind;
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind};

use super::{WebhookSpec, build};
use crate::attempt::Performed;
use crate::context::Context;
use crate::http;
use crate::outcome::{Verdict, classify_error, classify_status};

pub async fn execute(hook: &WebhookSpec, ctx: &Context<'_>) -> Performed {
    let job = ctx.job;
    // The outgoing request's span, a child of the attempt's; the receiver gets its context.
    let mut span = HeraldSpan::start(
        "herald.webhook",
        SpanKind::Client,
        job.event.trace.as_deref(),
        vec![
            KeyValue::new("http.request.method", hook.method.as_str()),
            KeyValue::new(
                "server.address",
                hook.url.host_str().unwrap_or_default().to_owned(),
            ),
        ],
    );
    let traceparent = span.traceparent();
    let request = build(
        job.execution_id,
        &job.event,
        hook,
        ctx.now.timestamp(),
        Some(&traceparent),
    );
    let timeout = Duration::from_millis(u64::from(hook.timeout_ms));
    let delivered = http::send(ctx.outbound, request, timeout).await;
    // A `Retry-After` date counts from when the answer came.
    let answered = ctx.now + chrono::Duration::from_std(delivered.duration).unwrap_or_default();
    let verdict = match (&delivered.status, &delivered.error) {
        (Some(status), _) => classify_status(*status, delivered.retry_after(), answered),
        (None, Some((kind, _))) => classify_error(*kind),
        (None, None) => classify_error(ErrorKind::Request),
    };
    if let Some(status) = delivered.status {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    if verdict != Verdict::Success {
        span.set_error(match &delivered.error {
            Some((kind, _)) => kind.as_str().to_owned(),
            None => "unsuccessful status".to_owned(),
        });
    }
    Performed {
        target: hook.url.to_string(),
        delivered,
        verdict,
    }
}
