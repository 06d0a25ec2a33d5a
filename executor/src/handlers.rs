//! Performing an attempt, by the action's handler type: a signed webhook, a chained event on
//! `herald.events`, or a log line. Each gives what the attempt record needs and a verdict.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald_common::action::{
    CHAIN_DEPTH_KEY, LogHandler, LogLevel, MAX_CHAIN_DEPTH, PublishHandler, WebhookHandler,
};
use herald_common::broker::{Outgoing, Publisher};
use herald_common::messages::ExecutionJob;
use herald_common::net::Destinations;
use herald_common::signing::SigningKey;
use herald_common::status::ErrorKind;

use crate::deliver::{self, Delivered};
use crate::outcome::{Verdict, classify_error, classify_status};
use crate::request;

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Performed {
    /// What the attempt record shows as its target: the URL, or `publish:<type>`, or `log`.
    pub target: String,
    pub delivered: Delivered,
    pub verdict: Verdict,
}

/// The destination a webhook goes to, as circuits and isolation key it: `scheme://host:port`.
pub fn endpoint_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{}://{}:{}", url.scheme(), host, port))
}

/// Sends a webhook attempt and reads its verdict from the response.
pub async fn webhook(
    http: &reqwest::Client,
    policy: &Destinations,
    job: &ExecutionJob,
    hook: &WebhookHandler,
    traceparent: Option<&str>,
    body_limit: usize,
    now: DateTime<Utc>,
) -> Performed {
    let keys: Vec<SigningKey> = hook
        .secrets
        .iter()
        .filter_map(|s| SigningKey::from_secret(s).ok())
        .collect();
    let request = request::build(
        job.execution_id,
        &job.event,
        hook,
        &keys,
        now.timestamp(),
        traceparent,
    );
    let timeout = Duration::from_millis(u64::from(hook.timeout_ms));
    let delivered = deliver::send(http, policy, request, timeout, body_limit).await;
    let verdict = match (&delivered.status, &delivered.error) {
        (Some(status), _) => classify_status(*status, delivered.retry_after(), Utc::now()),
        (None, Some((kind, _))) => classify_error(*kind),
        (None, None) => classify_error(ErrorKind::Request),
    };
    Performed {
        target: hook.url.clone(),
        delivered,
        verdict,
    }
}

/// Emits the chained event. Its id is the execution's, so a repeated attempt (a redelivered
/// job) is the same event and is stored once.
pub async fn publish(
    publisher: &Arc<Publisher>,
    job: &ExecutionJob,
    handler: &PublishHandler,
) -> Performed {
    let started = Instant::now();
    let target = format!("publish:{}", handler.event_type);
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
        return failed(target, ErrorKind::ChainTooDeep, message, started);
    }
    let mut metadata = job.event.metadata.clone();
    metadata.insert(CHAIN_DEPTH_KEY.into(), depth.to_string());
    metadata.insert("herald_parent_event".into(), job.event.id.as_str().into());
    let id = job.execution_id.to_string();
    let body = serde_json::json!({
        "tenant_id": job.tenant_id.to_string(),
        "id": id,
        "type": handler.event_type,
        "source": handler.source.as_deref().or(job.event.source.as_deref()),
        "data": serde_json::value::RawValue::from_string(job.event.data.as_str().to_owned())
            .ok(),
        "metadata": metadata,
    });
    let outgoing = Outgoing::json_event(&handler.event_type, body.to_string().into_bytes(), &id);
    match publisher.publish(&outgoing).await {
        Ok(()) => Performed {
            target,
            delivered: Delivered {
                status: None,
                headers: Vec::new(),
                body: Some(format!("published event {id}")),
                error: None,
                duration: started.elapsed(),
            },
            verdict: Verdict::Success,
        },
        Err(error) => failed(target, ErrorKind::Publish, error.to_string(), started),
    }
}

/// Logs the event.
pub fn log(job: &ExecutionJob, handler: &LogHandler) -> Performed {
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
        delivered: Delivered {
            status: None,
            headers: Vec::new(),
            body: None,
            error: None,
            duration: Duration::ZERO,
        },
        verdict: Verdict::Success,
    }
}

fn failed(target: String, kind: ErrorKind, message: String, started: Instant) -> Performed {
    Performed {
        target,
        delivered: Delivered {
            status: None,
            headers: Vec::new(),
            body: None,
            error: Some((kind, message)),
            duration: started.elapsed(),
        },
        verdict: classify_error(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        let table = [
            ("https://example.com/hook", Some("https://example.com:443")),
            ("http://example.com/a?b=1", Some("http://example.com:80")),
            ("http://127.0.0.1:8080/x", Some("http://127.0.0.1:8080")),
            ("https://[::1]:9443/", Some("https://[::1]:9443")),
            ("not a url", None),
        ];
        for (url, endpoint) in table {
            assert_eq!(endpoint_of(url).as_deref(), endpoint, "{url}");
        }
    }
}
