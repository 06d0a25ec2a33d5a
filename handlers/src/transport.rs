//! One outbound HTTP request and what came back: the transport every HTTP-speaking handler
//! shares (the guarded client, no redirects, a total timeout, a bounded body read).

use std::time::Duration;

use herald_common::net::Refused;
use herald_common::status::ErrorKind;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::attempt::Delivered;
use crate::client::{Outbound, check_literal_host};
use crate::credentials::scrub;

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

/// An HTTP method a handler may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// A method by name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }

    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Head => reqwest::Method::HEAD,
            Self::Post => reqwest::Method::POST,
            Self::Put => reqwest::Method::PUT,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// Everything needed to send one attempt, built without I/O by the handler.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The request as a test shows it, unsent: credential headers as the mask, and none of
    /// `secrets` anywhere.
    pub fn preview(&self, secrets: &[&str]) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if crate::credentials::is_credential_header(name) {
                    crate::credentials::MASK.into()
                } else {
                    scrub(value, secrets)
                };
                (name.clone(), shown.into_owned().into())
            })
            .collect();
        serde_json::json!({
            "method": self.method,
            "url": scrub(self.url.as_str(), secrets),
            "headers": headers,
            "body": scrub(&String::from_utf8_lossy(&self.body), secrets),
        })
    }
}

/// What a request's span records of its answer: the status, and an error unless it succeeded.
pub(crate) fn report_on_span(
    span: &mut herald_common::trace::HeraldSpan,
    delivered: &crate::attempt::Delivered,
    verdict: &crate::outcome::Verdict,
) {
    if let Some(status) = delivered.status {
        span.set_attribute(herald_common::trace::KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    if *verdict != crate::outcome::Verdict::Success {
        span.set_error(match &delivered.error {
            Some((kind, _)) => kind.as_str().to_owned(),
            None => "unsuccessful status".to_owned(),
        });
    }
}

pub(crate) fn error_kind(error: &reqwest::Error) -> (ErrorKind, String) {
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

/// Sends `request` (taking its body, which is not copied) through the guarded client with a
/// total `timeout`, reading at most the outbound's body limit of the response.
pub async fn send(outbound: &Outbound, request: Request, timeout: Duration) -> Delivered {
    let started = Instant::now();
    let failed = |kind, message: String| Delivered::failed(kind, message, started.elapsed());
    if let Err(refused) = check_literal_host(&outbound.destinations, &request.url) {
        return failed(ErrorKind::DestinationRefused, refused.to_string());
    }
    let mut builder = outbound
        .client
        .request(request.method.to_reqwest(), request.url)
        .timeout(timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let mut response = match builder.body(request.body).send().await {
        Ok(response) => response,
        Err(error) => {
            let (kind, message) = error_kind(&error);
            return failed(kind, message);
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
    let limit = outbound.body_limit;
    let mut body = Vec::new();
    let mut error = None;
    // The status is known; a body that fails or stalls does not change the verdict.
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    body.truncate(limit);
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
            assert!(!crate::credentials::is_credential_header(name), "{name}");
        }
    }

    #[test]
    fn methods_read_in_any_case() {
        for method in Method::ALL {
            assert_eq!(Method::parse(&method.as_str().to_lowercase()), Some(method));
        }
        assert_eq!(Method::parse("TRACE"), None);
    }
}
