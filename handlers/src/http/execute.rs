//! One `http` attempt: render the request, authenticate it (an OAuth token from the cache, or
//! fetched, and once more after a 401), send it through the guarded client, read the answer
//! against `success_codes`. Nothing recorded holds a secret: every secret value and credential
//! of the attempt is scrubbed from its URL, answer and error.

use std::time::Duration;

use herald_common::status::ErrorKind;
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind};
use tokio::time::Instant;

use super::HttpSpec;
use super::auth::Rendered;
use crate::attempt::{Delivered, Performed};
use crate::context::Context;
use crate::credentials::{is_credential_header, scrub};
use crate::oauth::TokenRequest;
use crate::outcome::{Verdict, verdict_of};
use crate::signing::standard_headers;
use crate::template::RenderError;
use crate::transport::{self, Request};
use crate::webhook::USER_AGENT;

/// A rendered request, before it is authenticated and sent.
pub struct Prepared {
    pub request: Request,
    /// An OAuth token to put in `authorization` first.
    pub token: Option<TokenRequest>,
    /// What the attempt's record must not hold: the secrets and credentials it used.
    pub credentials: Vec<String>,
}

/// Renders every template of the request for one attempt.
pub fn prepare(spec: &HttpSpec, ctx: &Context<'_>) -> Result<Prepared, RenderError> {
    let rctx = &ctx.render_context();
    let templates = &spec.templates;
    let mut url = spec.url.render("handler.url", templates, rctx)?;
    if !spec.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &spec.query {
            pairs.append_pair(name, &templates.render(value, rctx)?);
        }
    }
    let mut headers = crate::headers::render("handler.headers", &spec.headers, templates, rctx)?;
    let mut credentials: Vec<String> = ctx.secrets.values().map(str::to_owned).collect();
    credentials.extend(
        headers
            .iter()
            .filter(|(name, _)| is_credential_header(name))
            .map(|(_, value)| value.clone()),
    );
    let body = match &spec.body {
        Some(body) => {
            headers.push(("content-type".into(), body.content_type().to_owned()));
            body.render(templates, rctx)?
        }
        None => Vec::new(),
    };
    headers.push(("user-agent".into(), USER_AGENT.into()));
    let mut token = None;
    match spec
        .auth
        .as_ref()
        .map(|a| a.render(templates, rctx))
        .transpose()?
    {
        Some(Rendered::Header(value)) => {
            credentials.push(value.clone());
            headers.push(("authorization".into(), value));
        }
        Some(Rendered::Token(request)) => {
            credentials.push(request.client_secret.clone());
            token = Some(request);
        }
        None => {}
    }
    if let Some(secrets) = &spec.signing {
        let id = ctx.job.delivery_id();
        headers.extend(standard_headers(secrets, &id, ctx.now.timestamp(), &body));
    }
    Ok(Prepared {
        request: Request {
            method: spec.method,
            url,
            headers,
            body,
        },
        token,
        credentials,
    })
}

pub async fn execute(spec: &HttpSpec, ctx: &Context<'_>) -> Performed {
    let started = Instant::now();
    let Prepared {
        mut request,
        token,
        mut credentials,
    } = match prepare(spec, ctx) {
        Ok(prepared) => prepared,
        Err(error) => {
            let message = scrub(&error.to_string(), &ctx.secret_values()).into_owned();
            return Performed::failed(
                spec.url.source.clone(),
                ErrorKind::Template,
                message,
                started.elapsed(),
            );
        }
    };
    let timeout = Duration::from_millis(u64::from(spec.timeout_ms));
    let mut span = HeraldSpan::start(
        "herald.http",
        SpanKind::Client,
        ctx.job.event.trace.as_deref(),
        vec![
            KeyValue::new("http.request.method", spec.method.as_str()),
            KeyValue::new(
                "server.address",
                spec.url.origin.host_str().unwrap_or_default().to_owned(),
            ),
        ],
    );
    request
        .headers
        .push(("traceparent".into(), span.traceparent()));
    let target = scrub(request.url.as_str(), &refs(&credentials)).into_owned();
    let outbound = ctx.outbound;
    let action = ctx.job.action_id;
    let (delivered, verdict) = match &token {
        None => send(request, timeout, spec, ctx).await,
        Some(token_request) => {
            let mut refused = None;
            loop {
                let (token, fresh) = match outbound
                    .tokens
                    .token(outbound, action, token_request, timeout, refused.as_deref())
                    .await
                {
                    Ok(token) => token,
                    Err(failure) => {
                        span.set_error(failure.kind.as_str().to_owned());
                        let message = scrub(&failure.message, &refs(&credentials)).into_owned();
                        return Performed {
                            target,
                            delivered: Delivered::failed(failure.kind, message, started.elapsed()),
                            verdict: failure.verdict,
                        };
                    }
                };
                credentials.push(token.clone());
                let mut authenticated = request.clone();
                authenticated
                    .headers
                    .push(("authorization".into(), format!("Bearer {token}")));
                let (delivered, verdict) = send(authenticated, timeout, spec, ctx).await;
                // A 401 with a token from the cache: it may have been revoked; once more with
                // a new one.
                if delivered.status == Some(401) && !fresh && refused.is_none() {
                    refused = Some(token);
                    continue;
                }
                break (delivered, verdict);
            }
        }
    };
    transport::report_on_span(&mut span, &delivered, &verdict);
    Performed {
        target,
        delivered: scrubbed(delivered, &refs(&credentials)),
        verdict,
    }
}

fn refs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

async fn send(
    request: Request,
    timeout: Duration,
    spec: &HttpSpec,
    ctx: &Context<'_>,
) -> (Delivered, Verdict) {
    let delivered = transport::send(ctx.outbound, request, timeout).await;
    let verdict = verdict_of(&delivered, spec.success_codes.as_deref(), ctx.now);
    (delivered, verdict)
}

/// An attempt's result with every one of `secrets` taken out of what is recorded.
pub fn scrubbed(mut delivered: Delivered, secrets: &[&str]) -> Delivered {
    if let Some(body) = &mut delivered.body {
        *body = scrub(body, secrets).into_owned();
    }
    if let Some((_, message)) = &mut delivered.error {
        *message = scrub(message, secrets).into_owned();
    }
    for (_, value) in &mut delivered.headers {
        *value = scrub(value, secrets).into_owned();
    }
    delivered
}
