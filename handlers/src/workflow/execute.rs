//! What one step computes besides its handler's attempt: whether its `if` holds, its `set`
//! values, and the output later steps read of a handler's attempt.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::spec::StepSpec;
use crate::attempt::Performed;
use crate::handler::Handler;
use crate::template::{RenderContext, RenderError};

/// Largest output a step keeps for later steps (its JSON); a larger one is cut to a note, so
/// that one chatty API cannot swell every later step's read.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Response headers a step's output keeps: what later steps commonly read.
const KEPT_HEADERS: [&str; 4] = ["content-type", "location", "etag", "x-request-id"];

/// Whether the step's `if` holds (a step without one always runs). False: `false`, `null`,
/// `0`, `""`, `"false"`, an empty list or object.
pub fn condition_holds(step: &StepSpec, ctx: &RenderContext) -> Result<bool, RenderError> {
    let Some(condition) = &step.condition else {
        return Ok(true);
    };
    let value = condition.render(&step.templates, ctx)?;
    Ok(match value {
        Value::Null | Value::Bool(false) => false,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !(s.is_empty() || s == "false"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(true) => true,
    })
}

/// When the step's `at` says it may run (`None`: it has no `at`).
pub fn wait_until(
    step: &StepSpec,
    ctx: &RenderContext,
) -> Result<Option<DateTime<Utc>>, RenderError> {
    let Some(at) = &step.at else {
        return Ok(None);
    };
    let text = step.templates.render(at, ctx)?;
    let field = format!("steps.{}.at", step.id);
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|_| RenderError {
            field,
            message: format!("rendered {text:?}, which is not an RFC 3339 time"),
        })
}

/// A `set` step's output: each value rendered.
pub fn set_values(
    step: &StepSpec,
    values: &[(String, crate::template::JsonTemplate)],
    ctx: &RenderContext,
) -> Result<Value, RenderError> {
    let mut out = serde_json::Map::with_capacity(values.len());
    for (name, template) in values {
        out.insert(name.clone(), template.render(&step.templates, ctx)?);
    }
    Ok(bounded(Value::Object(out)))
}

/// What later steps read of a succeeded attempt: for HTTP its status, the headers worth
/// reading and its body (parsed when JSON); for email the server's reply (with the message
/// id); for the others what they recorded.
pub fn output_of(handler: &Handler, performed: &Performed) -> Value {
    let delivered = &performed.delivered;
    let body = delivered
        .body
        .as_deref()
        .map(|text| serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::from(text)));
    let output = match handler {
        Handler::Webhook(_) | Handler::Http(_) => {
            let headers: serde_json::Map<String, Value> = delivered
                .headers
                .iter()
                .filter(|(name, _)| KEPT_HEADERS.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
                .collect();
            json!({"status": delivered.status, "headers": headers, "body": body})
        }
        _ => json!({"body": body}),
    };
    bounded(output)
}

fn bounded(output: Value) -> Value {
    let size = output.to_string().len();
    if size <= MAX_OUTPUT_BYTES {
        return output;
    }
    json!({"truncated": true, "bytes": size,
        "note": format!("the output was larger than {MAX_OUTPUT_BYTES} bytes and was not kept")})
}
