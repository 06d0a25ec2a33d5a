//! A handler's own request headers, as an action gives them: checked once when it is saved.

use std::collections::BTreeMap;

use herald_common::action::ActionError;
use herald_common::json_tree::{At, Json};

use crate::template::{Builder, Kind, RenderContext, RenderError, Templates, Text};

/// Most headers of a handler's own.
pub const MAX_HEADERS: usize = 64;
/// Longest value of one header: servers refuse larger header sections (431).
pub const MAX_HEADER_VALUE_LEN: usize = 8192;

/// Reads `headers` (an object of strings) named `field`: names lowercased and valid, none of
/// those Herald sets itself, values without line breaks, within the limits.
pub fn parse(
    field: &str,
    value: Option<&Json<'_>>,
) -> Result<BTreeMap<String, String>, ActionError> {
    let h = match value {
        None => return Ok(BTreeMap::new()),
        Some(Json::Object(h)) => h,
        Some(_) => return Err(ActionError::new(field, "must be an object of strings")),
    };
    if h.len() > MAX_HEADERS {
        return Err(ActionError::new(
            field,
            format!("may hold at most {MAX_HEADERS} headers"),
        ));
    }
    let mut headers = BTreeMap::new();
    for (name, value) in h.iter() {
        let root = At::Root(field);
        let at = root.key(name);
        let Json::Str(value) = value else {
            return Err(ActionError::new(at, "must be a string"));
        };
        let lower = name.to_ascii_lowercase();
        if !is_token(&lower) {
            return Err(ActionError::new(at, "is not a valid header name"));
        }
        if is_reserved(&lower) {
            return Err(ActionError::new(
                at,
                "is set by Herald and cannot be overridden",
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(ActionError::new(at, "must not contain line breaks"));
        }
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(ActionError::new(
                at,
                format!("must be at most {MAX_HEADER_VALUE_LEN} bytes"),
            ));
        }
        headers.insert(lower, value.as_ref().to_owned());
    }
    Ok(headers)
}

/// Headers whose values are templates, compiled (`field` names the headers' object).
pub fn compile(
    field: &str,
    headers: &BTreeMap<String, String>,
    builder: &mut Builder,
) -> Result<Vec<(String, Text)>, ActionError> {
    let root = At::Root(field);
    headers
        .iter()
        .map(|(name, value)| {
            let at = root.key(name).to_string();
            Ok((name.clone(), builder.text(&at, value, Kind::Text)?))
        })
        .collect()
}

/// Header values for one attempt: a rendered value must still be one a header can carry.
pub fn render(
    field: &str,
    headers: &[(String, Text)],
    templates: &Templates,
    ctx: &RenderContext,
) -> Result<Vec<(String, String)>, RenderError> {
    headers
        .iter()
        .map(|(name, value)| {
            let rendered = templates.render(value, ctx)?.into_owned();
            let control = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
            let problem = if rendered.bytes().any(control) {
                Some(
                    "renders a line break or control character, which a header cannot carry"
                        .to_owned(),
                )
            } else if rendered.len() > MAX_HEADER_VALUE_LEN {
                Some(format!("renders more than {MAX_HEADER_VALUE_LEN} bytes"))
            } else {
                None
            };
            match problem {
                Some(message) => Err(RenderError {
                    field: At::Root(field).key(name).to_string(),
                    message,
                }),
                None => Ok((name.clone(), rendered)),
            }
        })
        .collect()
}

/// An HTTP token (RFC 9110), as a header name must be.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "host"
            | "user-agent"
            | "traceparent"
            | "tracestate"
            | "transfer-encoding"
            | "connection"
    ) || name.starts_with("webhook-")
}
