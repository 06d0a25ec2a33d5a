//! One `email` attempt: render every field, build the message, send it through the action's
//! SMTP server (or the operator's relay). A 4xx answer or a failed connection is retried; a
//! 5xx answer fails for good with the server's words recorded.

use std::str::FromStr;
use std::time::Duration;

use herald_common::status::ErrorKind;
use herald_common::trace::{HeraldSpan, KeyValue, SpanKind};
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{DEFAULT_RELAY, EmailSpec};
use crate::attempt::Performed;
use crate::context::Context;
use crate::credentials::scrub;
use crate::http::scrubbed;
use crate::mail::{self, Relay};
use crate::outcome::{Verdict, classify_error};
use crate::template::{RenderContext, RenderError, Templates, Text};

/// An email with every template rendered.
pub struct Rendered {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// `<execution id@sender's domain>`: the same for every attempt, so that a receiver can
    /// tell a retried message from a new one.
    pub message_id: String,
    /// The server to send through (`None`: the default relay, which is not configured).
    pub relay: Option<Relay>,
}

fn mailbox(
    templates: &Templates,
    ctx: &RenderContext,
    field: &str,
    text: &Text,
) -> Result<Mailbox, RenderError> {
    let rendered = templates.render(text, ctx)?;
    Mailbox::from_str(rendered.trim()).map_err(|e| RenderError {
        field: field.to_owned(),
        message: format!("renders {rendered:?}, which is not an email address: {e}"),
    })
}

fn mailboxes(
    templates: &Templates,
    ctx: &RenderContext,
    key: &str,
    texts: &[Text],
) -> Result<Vec<Mailbox>, RenderError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| mailbox(templates, ctx, &format!("handler.{key}[{i}]"), text))
        .collect()
}

/// Renders every field of the email for one attempt.
pub fn render(spec: &EmailSpec, ctx: &Context<'_>) -> Result<Rendered, RenderError> {
    let rctx = &ctx.render_context();
    let templates = &spec.templates;
    let from = mailbox(templates, rctx, "handler.from", &spec.from)?;
    let subject = templates.render(&spec.subject, rctx)?.into_owned();
    if subject.chars().any(char::is_control) {
        return Err(RenderError {
            field: "handler.subject".into(),
            message: "renders a line break or control character, which a subject cannot carry"
                .into(),
        });
    }
    let optional = |text: &Option<Text>| -> Result<Option<String>, RenderError> {
        text.as_ref()
            .map(|t| templates.render(t, rctx).map(|s| s.into_owned()))
            .transpose()
    };
    let relay = match &spec.smtp {
        Some(smtp) => {
            let credentials = match (&smtp.username, &smtp.password) {
                (Some(user), Some(password)) => Some((
                    templates.render(user, rctx)?.into_owned(),
                    templates.render(password, rctx)?.into_owned(),
                )),
                _ => None,
            };
            Some(Relay {
                host: smtp.host.clone(),
                port: smtp.port,
                security: smtp.security,
                credentials,
                trusted: false,
            })
        }
        None => ctx.outbound.default_relay.clone(),
    };
    Ok(Rendered {
        message_id: format!("<{}@{}>", ctx.job.delivery_id(), from.email.domain()),
        to: mailboxes(templates, rctx, "to", &spec.to)?,
        cc: mailboxes(templates, rctx, "cc", &spec.cc)?,
        bcc: mailboxes(templates, rctx, "bcc", &spec.bcc)?,
        reply_to: spec
            .reply_to
            .as_ref()
            .map(|t| mailbox(templates, rctx, "handler.reply_to", t))
            .transpose()?,
        from,
        subject,
        text: optional(&spec.text)?,
        html: optional(&spec.html)?,
        relay,
    })
}

impl Rendered {
    /// The MIME message.
    pub fn message(&self) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(self.subject.clone())
            .message_id(Some(self.message_id.clone()));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        for bcc in &self.bcc {
            builder = builder.bcc(bcc.clone());
        }
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let built = match (&self.text, &self.html) {
            (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            )),
            (None, Some(html)) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
            (text, None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text.clone().unwrap_or_default()),
            ),
        };
        built.map_err(|e| e.to_string())
    }

    /// What a test shows of it, unsent: none of `secrets` anywhere.
    pub fn preview(&self, secrets: &[&str]) -> Value {
        let list =
            |boxes: &[Mailbox]| -> Vec<String> { boxes.iter().map(|m| m.to_string()).collect() };
        let smtp = match &self.relay {
            Some(relay) if relay.trusted => {
                format!("default relay smtp://{}:{}", relay.host, relay.port)
            }
            Some(relay) => format!("smtp://{}:{}", relay.host, relay.port),
            None => "none: neither handler.smtp nor executor.smtp.host is set".to_owned(),
        };
        let mut shown = json!({
            "smtp": smtp,
            "message_id": self.message_id,
            "from": self.from.to_string(),
            "to": list(&self.to),
            "cc": list(&self.cc),
            "bcc": list(&self.bcc),
            "reply_to": self.reply_to.as_ref().map(|m| m.to_string()),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
        });
        crate::credentials::scrub_json(&mut shown, secrets);
        shown
    }
}

pub async fn execute(spec: &EmailSpec, ctx: &Context<'_>) -> Performed {
    let started = Instant::now();
    let target = spec.endpoint.clone();
    let mut secrets = ctx.secret_values();
    let rendered = match render(spec, ctx) {
        Ok(rendered) => rendered,
        Err(error) => {
            let message = scrub(&error.to_string(), &secrets).into_owned();
            return Performed::failed(target, ErrorKind::Template, message, started.elapsed());
        }
    };
    let Some(relay) = &rendered.relay else {
        return Performed::failed(
            target,
            ErrorKind::DestinationRefused,
            "no SMTP server: the action names none (handler.smtp) and the operator configured \
             no default relay (executor.smtp.host)"
                .into(),
            started.elapsed(),
        );
    };
    let message = match rendered.message() {
        Ok(message) => message,
        Err(error) => {
            return Performed::failed(target, ErrorKind::Template, error, started.elapsed());
        }
    };
    if let Some((_, password)) = &relay.credentials {
        secrets.push(password);
    }
    let target = if spec.endpoint == DEFAULT_RELAY {
        format!("smtp://{}:{}", relay.host, relay.port)
    } else {
        target
    };
    let mut span = HeraldSpan::start(
        "herald.email",
        SpanKind::Client,
        ctx.job.event.trace.as_deref(),
        vec![
            KeyValue::new("server.address", relay.host.clone()),
            KeyValue::new("server.port", i64::from(relay.port)),
        ],
    );
    let timeout = Duration::from_millis(u64::from(spec.timeout_ms));
    let delivered = mail::send(ctx.outbound, relay, message, &rendered.message_id, timeout).await;
    let verdict = match &delivered.error {
        None => Verdict::Success,
        Some((kind, _)) => {
            span.set_error(kind.as_str().to_owned());
            classify_error(*kind)
        }
    };
    if let Some(status) = delivered.status {
        span.set_attribute(KeyValue::new("smtp.response.code", i64::from(status)));
    }
    Performed {
        target,
        delivered: scrubbed(delivered, &secrets),
        verdict,
    }
}
