//! What one attempt did, whatever its handler: what the attempt record shows and the verdict
//! the executor acts on.

use std::time::Duration;

use herald_common::status::ErrorKind;

use crate::outcome::{Verdict, classify_error};

/// The attempt's result as recorded.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub error: Option<(ErrorKind, String)>,
    pub duration: Duration,
}

impl Delivered {
    /// An attempt that ended without a response.
    pub fn failed(kind: ErrorKind, message: String, duration: Duration) -> Self {
        Self {
            status: None,
            headers: Vec::new(),
            body: None,
            error: Some((kind, message)),
            duration,
        }
    }

    /// An attempt that needed no response (a log line, a published event).
    pub fn done(body: Option<String>, duration: Duration) -> Self {
        Self {
            status: None,
            headers: Vec::new(),
            body,
            error: None,
            duration,
        }
    }

    pub fn retry_after(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == "retry-after")
            .map(|(_, v)| v.as_str())
    }
}

/// What one attempt did.
#[derive(Debug, Clone)]
pub struct Performed {
    /// What the attempt record shows as its target: the URL, or `publish:<type>`, or `log`.
    pub target: String,
    pub delivered: Delivered,
    pub verdict: Verdict,
}

impl Performed {
    /// An attempt that failed before it got a response, classified by its kind.
    pub fn failed(target: String, kind: ErrorKind, message: String, duration: Duration) -> Self {
        Self {
            target,
            delivered: Delivered::failed(kind, message, duration),
            verdict: classify_error(kind),
        }
    }
}
