//! One webhook attempt: build, sign, send through the guarded client, classify the answer.

use std::time::Duration;

use herald_common::trace::{HeraldSpan, KeyValue, SpanKind};

use herald_common::status::ErrorKind;

use super::{WebhookSpec, build, payload};
use crate::attempt::Performed;
use crate::context::Context;
use crate::credentials::scrub;
use crate::outcome::verdict_of;
use crate::transport;

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
    let payload = match payload(hook, &job.event, || ctx.render_context()) {
        Ok(payload) => payload,
        Err(error) => {
            span.set_error("template".to_owned());
            let message = scrub(&error.to_string(), &ctx.secret_values()).into_owned();
            return Performed::failed(
                hook.url.to_string(),
                ErrorKind::Template,
                message,
                std::time::Duration::ZERO,
            );
        }
    };
    let request = build(
        job.delivery_id(),
        payload,
        hook,
        ctx.now.timestamp(),
        Some(&traceparent),
    );
    let timeout = Duration::from_millis(u64::from(hook.timeout_ms));
    let delivered = transport::send(ctx.outbound, request, timeout).await;
    let verdict = verdict_of(&delivered, None, ctx.now);
    transport::report_on_span(&mut span, &delivered, &verdict);
    let secrets = ctx.secret_values();
    Performed {
        target: hook.url.to_string(),
        delivered: if secrets.is_empty() {
            delivered
        } else {
            crate::http::scrubbed(delivered, &secrets)
        },
        verdict,
    }
}
