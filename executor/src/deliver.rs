//! Sending one attempt and capturing what came back.

use std::time::{Duration, Instant};

use herald_common::net::{Destinations, Refused};
use herald_common::status::ErrorKind;

use crate::client::check_literal_host;
use crate::request::WebhookRequest;

/// The response headers an attempt keeps: none is a credential (a test holds this).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "retry-after",
    "location",
    "date",
    "server",
    "x-request-id",
];

/// What one attempt produced.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub error: Option<(ErrorKind, String)>,
    pub duration: Duration,
}

impl Delivered {
    pub fn retry_after(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == "retry-after")
            .map(|(_, v)| v.as_str())
    }
}

fn error_kind(error: &reqwest::Error) -> (ErrorKind, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<Refused>() {
            return (ErrorKind::DestinationRefused, refused.to_string());
        }
        source = current.source();
    }
    let message = error_chain(error);
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        if message.contains("dns error") || message.contains("failed to lookup") {
            ErrorKind::Dns
        } else if message.contains("certificate") || message.contains("tls") {
            ErrorKind::Tls
        } else {
            ErrorKind::Connect
        }
    } else {
        ErrorKind::Request
    };
    (kind, message)
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Sends `request` (taking its body, which is not copied) with a total `timeout`, reading at most `body_limit` bytes of the response.
pub async fn send(
    client: &reqwest::Client,
    policy: &Destinations,
    request: WebhookRequest,
    timeout: Duration,
    body_limit: usize,
) -> Delivered {
    let started = Instant::now();
    let failed = |kind, message: String, started: Instant| Delivered {
        status: None,
        headers: Vec::new(),
        body: None,
        error: Some((kind, message)),
        duration: started.elapsed(),
    };
    let url = match url::Url::parse(&request.url) {
        Ok(url) => url,
        Err(error) => return failed(ErrorKind::Request, format!("invalid URL: {error}"), started),
    };
    if let Err(refused) = check_literal_host(policy, &url) {
        return failed(ErrorKind::DestinationRefused, refused.to_string(), started);
    }
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut builder = client.request(method, url).timeout(timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let builder = builder.body(request.body);
    let mut response = match builder.send().await {
        Ok(response) => response,
        Err(error) => {
            let (kind, message) = error_kind(&error);
            return failed(kind, message, started);
        }
    };
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    let mut body = Vec::new();
    let mut error = None;
    // The status is known; a body that fails or stalls does not change the verdict.
    while body.len() < body_limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    body.truncate(body_limit);
    if let Some(e) = error {
        tracing::debug!(error = %e, "response body ended early");
    }
    Delivered {
        status: Some(status),
        headers,
        body: Some(String::from_utf8_lossy(&body).into_owned()),
        error: None,
        duration: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kept_response_header_is_a_credential() {
        // Attempts show these headers to anyone who may read the execution.
        for name in KEPT_HEADERS {
            assert!(
                !herald_common::credentials::is_credential_header(name),
                "{name}"
            );
        }
    }
}
