//! The handler types `cargo xtask bench executor` compares on one run: the plain signed webhook,
//! an `http` request whose JSON body is five templates, a three-step workflow (an `http` step, a
//! `set` step, then the same `http` request as the last step, every step recorded), and an email
//! through a mail sink on loopback (one SMTP server per destination, taking every message; the executor keeps its
//! connections open across messages, and the sink counts the connections it accepted). Also
//! the same run's floor: PostgreSQL's fsync time on this disk (`pg_test_fsync`), and the cost of
//! rendering the `http` request alone.

use std::process::Command;

use anyhow::bail;
use serde_json::{Value, json};

/// A handler type the benchmark runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchHandler {
    Webhook,
    Http,
    Email,
    Workflow,
}

impl BenchHandler {
    pub fn name(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Http => "http",
            Self::Email => "email",
            Self::Workflow => "workflow",
        }
    }

    /// The attempts one execution of it records: one, and for the workflow its two `http`
    /// steps (in `step_attempts`; its `set` step records its output only).
    pub fn attempts_per_execution(self) -> u64 {
        match self {
            Self::Workflow => 2,
            _ => 1,
        }
    }

    /// The table its attempts are recorded in.
    pub fn attempts_table(self) -> &'static str {
        match self {
            Self::Workflow => "step_attempts",
            _ => "attempts",
        }
    }

    /// The action's handler for destination `url` (a mail sink's port for email). Every one
    /// carries `data.n` and `data.sent_unix_ns` to the receiver, which reads them back.
    pub fn handler(self, url: &str) -> Value {
        match self {
            Self::Webhook => json!({"type": "webhook", "url": url}),
            Self::Http => json!({"type": "http", "url": url, "method": "POST",
                "headers": {"x-order": "{{ event.data.n }}"},
                "body": http_body()}),
            Self::Email => json!({"type": "email",
                "smtp": {"host": "127.0.0.1", "port": url.parse::<u16>().unwrap_or(25),
                         "security": "none"},
                "from": "Bench <bench@example.com>", "to": ["receiver@example.com"],
                "subject": "Order {{ event.data.n }}",
                "text": "n={{ event.data.n }} sent={{ event.data.sent_unix_ns }}"}),
            // The receiver counts the first step's request apart (it says `step`) and reads the
            // last step's like the `http` handler's, so the latency is the whole run's.
            Self::Workflow => json!({"type": "workflow", "steps": [
                {"id": "first", "handler": {"type": "http", "url": url, "method": "POST",
                    "body": {"step": "first", "n": "{{ event.data.n }}"}}},
                {"id": "score", "depends_on": ["first"],
                 "set": {"status": "{{ steps.first.output.status }}", "n": "{{ event.data.n }}"}},
                {"id": "last", "depends_on": ["score"], "handler": {"type": "http", "url": url,
                    "method": "POST", "headers": {"x-order": "{{ steps.score.output.n }}"},
                    "body": http_body()}}]}),
        }
    }
}

/// Five templates: two that keep their JSON type, three rendered as text.
fn http_body() -> Value {
    json!({"data": {"n": "{{ event.data.n }}", "sent_unix_ns": "{{ event.data.sent_unix_ns }}"},
           "event": "{{ event.type }}",
           "summary": "order {{ event.data.n }} of {{ action.name }}",
           "id": "{{ event.id }}"})
}

/// `n` and `sent_unix_ns` from an email the sink took (its text body as the handler renders it).
pub fn read_mail(data: &str) -> Option<(u64, u64)> {
    let body = data.split("\r\n\r\n").nth(1)?;
    let n = body
        .split("n=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let sent = body
        .split("sent=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((n, sent))
}

/// Microseconds to render the `http` handler's request for one job (url, a header, the
/// five-template body): `handlers/examples/render_cost.rs`, built in release like the
/// executor it stands beside.
pub fn http_render_us(root: &std::path::Path) -> anyhow::Result<f64> {
    let output = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "herald-handlers"])
        .args(["--example", "render_cost"])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the render_cost example failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text.trim()
        .strip_prefix("render_us=")
        .and_then(|us| us.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("render_cost printed {text:?}"))
}

/// `pg_test_fsync`'s figure for one 8 KiB write and fsync in `dir` (on the benchmark's disk),
/// in microseconds; `None` when the tool is missing or its output unreadable.
pub fn fsync_floor_us(dir: &std::path::Path) -> Option<f64> {
    let tool = crate::packages::postgres_bin_dir()?.join("pg_test_fsync");
    let file = dir.join("pg_test_fsync.out");
    let output = Command::new(tool)
        .args(["-s", "1", "-f"])
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout);
    // "        fsync                              7654.321 ops/sec     131 usecs/op"
    let line = text
        .lines()
        .find(|line| line.trim_start().starts_with("fsync ") && line.contains("usecs/op"))?;
    let mut words = line.split_whitespace().rev();
    words.next();
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_body_gives_back_its_numbers() {
        let data = "Subject: Order 7\r\n\r\nn=7 sent=123\r\n";
        assert_eq!(read_mail(data), Some((7, 123)));
        assert_eq!(read_mail("Subject: x\r\n\r\nnothing"), None);
    }
}
