//! An `http` handler's settings: checked and compiled once (when the action is saved, or read
//! back), its JSON kept as written for storage and reads.

use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::{At, Json, Object};
use serde_json::Value;

use super::auth::Auth;
use crate::body::BodyTemplate;
use crate::destination::UrlTemplate;
use crate::headers;
use crate::signing::{self, Secret};
use crate::template::{Builder, Kind, Templates, Text};
use crate::transport::Method;
use crate::webhook::MAX_TIMEOUT_MS;

const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// Most `success_codes`.
const MAX_SUCCESS_CODES: usize = 32;
/// Most query parameters of a handler's own.
const MAX_QUERY: usize = 64;

/// A templated API request.
#[derive(Clone)]
pub struct HttpSpec {
    pub method: Method,
    pub url: UrlTemplate,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub body: Option<BodyTemplate>,
    pub auth: Option<Auth>,
    /// The statuses that count as success (2xx when not given).
    pub success_codes: Option<Vec<u16>>,
    /// Standard Webhooks signing secrets, when `sign` is on.
    pub signing: Option<Vec<Secret>>,
    pub timeout_ms: u32,
    /// `scheme://host:port` of `url`, the key of its circuit.
    pub endpoint: String,
    pub templates: Templates,
    /// The handler's JSON as written (without `type`; signing secrets as `secrets`): what is
    /// stored, and what reads show masked.
    pub(super) source: Value,
    /// `sign` is on and no secret was given: a stored one is kept, if any.
    pub(super) secret_generated: bool,
}

impl PartialEq for HttpSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl std::fmt::Debug for HttpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values, the body and credentials never reach logs.
        f.debug_struct("HttpSpec")
            .field("method", &self.method)
            .field("url", &self.url.source)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("auth", &self.auth.as_ref().map(Auth::kind))
            .field("signed", &self.signing.is_some())
            .finish()
    }
}

impl serde::Serialize for HttpSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for HttpSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Json::Object(map) = Json::from_value(&value) else {
            return Err(serde::de::Error::custom("an http handler is an object"));
        };
        parse(&map).map_err(serde::de::Error::custom)
    }
}

const FIELDS: [&str; 14] = [
    "type",
    "method",
    "url",
    "query",
    "headers",
    "body",
    "form",
    "content_type",
    "auth",
    "success_codes",
    "sign",
    "secret",
    "secrets",
    "timeout_ms",
];

/// Checks an `http` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<HttpSpec, ActionError> {
    reject_unknown(map, &FIELDS, "handler")?;
    let mut builder = Builder::new();
    let method = match map.get("method") {
        None => Method::Post,
        Some(Json::Str(m)) => Method::parse(m).ok_or_else(method_error)?,
        Some(_) => return Err(method_error()),
    };
    let url = match map.get("url") {
        Some(Json::Str(url)) => UrlTemplate::parse("handler.url", url, &mut builder)?,
        _ => {
            return Err(ActionError::new(
                "handler.url",
                "is required and must be a string",
            ));
        }
    };
    let query = parse_query(map.get("query"), &mut builder)?;
    let header_map = headers::parse("handler.headers", map.get("headers"))?;
    let headers = headers::compile("handler.headers", &header_map, &mut builder)?;
    let body = BodyTemplate::parse(map, &mut builder)?;
    if body.is_some() && matches!(method, Method::Get | Method::Head) {
        return Err(ActionError::new(
            if map.contains_key("form") {
                "handler.form"
            } else {
                "handler.body"
            },
            format!("a {} request carries no body", method.as_str()),
        ));
    }
    let auth = match map.get("auth") {
        None | Some(Json::Null) => None,
        Some(value) => Some(Auth::parse(value, &mut builder)?),
    };
    if auth.is_some() && header_map.contains_key("authorization") {
        return Err(ActionError::new(
            "handler.headers.authorization",
            "is set by handler.auth: give one or the other",
        ));
    }
    let success_codes = parse_success_codes(map.get("success_codes"))?;
    let sign = match map.get("sign") {
        None => false,
        Some(Json::Bool(sign)) => *sign,
        Some(_) => return Err(ActionError::new("handler.sign", "must be true or false")),
    };
    let (signing, secret_generated) = if sign {
        let (secrets, generated) = signing::parse_secrets(map)?;
        (Some(secrets), generated)
    } else {
        if let Some(key) = ["secret", "secrets"].iter().find(|k| map.contains_key(k)) {
            return Err(ActionError::new(
                format!("handler.{key}"),
                "signs requests only with \"sign\": true",
            ));
        }
        (None, false)
    };
    let timeout_ms = parse_timeout(map.get("timeout_ms"), DEFAULT_TIMEOUT_MS)?;
    let mut source = Json::Object(map.clone()).to_value();
    if let Value::Object(members) = &mut source {
        members.remove("type");
        members.remove("secret");
        if let Some(secrets) = &signing {
            members.insert(
                "secrets".into(),
                secrets.iter().map(|s| Value::from(s.text())).collect(),
            );
        }
    }
    Ok(HttpSpec {
        method,
        endpoint: url.endpoint(),
        url,
        query,
        headers,
        body,
        auth,
        success_codes,
        signing,
        timeout_ms,
        templates: builder.finish(),
        source,
        secret_generated,
    })
}

fn method_error() -> ActionError {
    ActionError::new(
        "handler.method",
        "must be one of GET, HEAD, POST, PUT, PATCH, DELETE",
    )
}

fn parse_query(
    value: Option<&Json<'_>>,
    builder: &mut Builder,
) -> Result<Vec<(String, Text)>, ActionError> {
    let fields = match value {
        None => return Ok(Vec::new()),
        Some(Json::Object(fields)) if fields.len() <= MAX_QUERY => fields,
        Some(_) => {
            return Err(ActionError::new(
                "handler.query",
                format!("must be an object of at most {MAX_QUERY} strings"),
            ));
        }
    };
    let root = At::Root("handler.query");
    fields
        .iter()
        .map(|(name, value)| {
            let at = root.key(name).to_string();
            match value {
                Json::Str(text) => Ok((name.to_owned(), builder.text(&at, text, Kind::Text)?)),
                _ => Err(ActionError::new(at, "must be a string")),
            }
        })
        .collect()
}

fn parse_success_codes(value: Option<&Json<'_>>) -> Result<Option<Vec<u16>>, ActionError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let problem = || {
        ActionError::new(
            "handler.success_codes",
            format!("must be a list of 1 to {MAX_SUCCESS_CODES} HTTP statuses (100 to 599)"),
        )
    };
    let Json::Array(items) = value else {
        return Err(problem());
    };
    if items.is_empty() || items.len() > MAX_SUCCESS_CODES {
        return Err(problem());
    }
    items
        .iter()
        .map(|item| {
            item.as_u64()
                .filter(|code| (100..=599).contains(code))
                .map(|code| code as u16)
                .ok_or_else(problem)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A handler's `timeout_ms`, from 100 to [`MAX_TIMEOUT_MS`].
pub fn parse_timeout(value: Option<&Json<'_>>, default: u32) -> Result<u32, ActionError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (100..=u64::from(MAX_TIMEOUT_MS)).contains(n))
            .map(|n| n as u32)
            .ok_or_else(|| {
                ActionError::new(
                    "handler.timeout_ms",
                    format!("must be from 100 to {MAX_TIMEOUT_MS} milliseconds"),
                )
            }),
    }
}
