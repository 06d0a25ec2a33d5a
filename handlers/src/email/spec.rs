//! An `email` handler's settings: addresses, subject and bodies as templates, and the SMTP
//! server it goes through (its own, or the operator's default relay).

use std::str::FromStr;

use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::{At, Json, Object};
use lettre::message::Mailbox;
use serde_json::Value;

use crate::http::parse_timeout;
use crate::template::{Builder, Kind, Templates, Text};

const DEFAULT_TIMEOUT_MS: u32 = 30_000;
/// Most recipients of one message (to, cc and bcc together).
pub const MAX_RECIPIENTS: usize = 100;
/// The destination of emails through the operator's relay, as circuits key it.
pub const DEFAULT_RELAY: &str = "smtp://default-relay";

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// Plain, then upgraded with STARTTLS, which the server must offer (port 587).
    StartTls,
    /// No encryption: only to an allow-listed destination.
    None,
}

impl Security {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "tls" => Some(Self::Tls),
            "starttls" => Some(Self::StartTls),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 465,
            Self::StartTls => 587,
            Self::None => 25,
        }
    }
}

/// An action's own SMTP server.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSpec {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<Text>,
    pub password: Option<Text>,
}

/// An email to send.
#[derive(Clone)]
pub struct EmailSpec {
    /// `None`: the operator's default relay (`executor.smtp`).
    pub smtp: Option<SmtpSpec>,
    pub from: Text,
    pub to: Vec<Text>,
    pub cc: Vec<Text>,
    pub bcc: Vec<Text>,
    pub reply_to: Option<Text>,
    pub subject: Text,
    pub text: Option<Text>,
    pub html: Option<Text>,
    pub timeout_ms: u32,
    /// `smtp://host:port` (or [`DEFAULT_RELAY`]), the key of its circuit.
    pub endpoint: String,
    pub templates: Templates,
    /// The handler's JSON as written (without `type`).
    pub(super) source: Value,
}

impl PartialEq for EmailSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl std::fmt::Debug for EmailSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses and bodies are personal data: only the shape reaches logs.
        f.debug_struct("EmailSpec")
            .field("endpoint", &self.endpoint)
            .field("to", &self.to.len())
            .field("html", &self.html.is_some())
            .finish_non_exhaustive()
    }
}

impl serde::Serialize for EmailSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for EmailSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Json::Object(map) = Json::from_value(&value) else {
            return Err(serde::de::Error::custom("an email handler is an object"));
        };
        parse(&map).map_err(serde::de::Error::custom)
    }
}

/// An address field: a template, or a mailbox (`Name <a@b.c>` or `a@b.c`) checked now.
fn address(builder: &mut Builder, field: &str, value: &Json<'_>) -> Result<Text, ActionError> {
    let Json::Str(text) = value else {
        return Err(ActionError::new(
            field,
            "must be an email address (a string)",
        ));
    };
    let parsed = builder.text(field, text, Kind::Text)?;
    if let Text::Literal(literal) = &parsed {
        Mailbox::from_str(literal)
            .map_err(|e| ActionError::new(field, format!("is not an email address: {e}")))?;
    }
    Ok(parsed)
}

fn addresses(builder: &mut Builder, map: &Object<'_>, key: &str) -> Result<Vec<Text>, ActionError> {
    let field = format!("handler.{key}");
    match map.get(key) {
        None => Ok(Vec::new()),
        Some(Json::Array(items)) => {
            let root = At::Root(&field);
            items
                .iter()
                .enumerate()
                .map(|(i, item)| address(builder, &root.index(i).to_string(), item))
                .collect()
        }
        Some(_) => Err(ActionError::new(field, "must be a list of email addresses")),
    }
}

fn optional_text(
    builder: &mut Builder,
    map: &Object<'_>,
    (prefix, key): (&str, &str),
    kind: Kind,
) -> Result<Option<Text>, ActionError> {
    let field = format!("{prefix}.{key}");
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(text)) => builder.text(&field, text, kind).map(Some),
        Some(_) => Err(ActionError::new(field, "must be a string")),
    }
}

fn parse_smtp(builder: &mut Builder, value: &Json<'_>) -> Result<SmtpSpec, ActionError> {
    let Json::Object(map) = value else {
        return Err(ActionError::new("handler.smtp", "must be an object"));
    };
    reject_unknown(
        map,
        &["host", "port", "security", "username", "password"],
        "handler.smtp",
    )?;
    let host = match map.get("host") {
        Some(Json::Str(host)) if valid_host(host) => host.to_ascii_lowercase(),
        _ => {
            return Err(ActionError::new(
                "handler.smtp.host",
                "is required: a host name or IP address, written out (no templates)",
            ));
        }
    };
    let security = match map.get("security") {
        None => Security::StartTls,
        Some(Json::Str(text)) => Security::parse(text).ok_or_else(security_error)?,
        Some(_) => return Err(security_error()),
    };
    let port = match map.get("port") {
        None => security.default_port(),
        Some(v) => v
            .as_u64()
            .filter(|p| (1..=65535).contains(p))
            .map(|p| p as u16)
            .ok_or_else(|| ActionError::new("handler.smtp.port", "must be from 1 to 65535"))?,
    };
    let username = optional_text(builder, map, ("handler.smtp", "username"), Kind::Text)?;
    let password = optional_text(builder, map, ("handler.smtp", "password"), Kind::Text)?;
    if username.is_some() != password.is_some() {
        return Err(ActionError::new(
            if username.is_some() {
                "handler.smtp.password"
            } else {
                "handler.smtp.username"
            },
            "a username and a password go together",
        ));
    }
    Ok(SmtpSpec {
        host,
        port,
        security,
        username,
        password,
    })
}

fn security_error() -> ActionError {
    ActionError::new(
        "handler.smtp.security",
        "must be \"starttls\" (the default), \"tls\" or \"none\"",
    )
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }))
}

const FIELDS: [&str; 11] = [
    "type",
    "smtp",
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "timeout_ms",
];

/// Checks an `email` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<EmailSpec, ActionError> {
    reject_unknown(map, &FIELDS, "handler")?;
    let mut builder = Builder::new();
    let smtp = match map.get("smtp") {
        None | Some(Json::Null) => None,
        Some(value) => Some(parse_smtp(&mut builder, value)?),
    };
    let from = match map.get("from") {
        Some(value) => address(&mut builder, "handler.from", value)?,
        None => return Err(ActionError::new("handler.from", "is required")),
    };
    let to = addresses(&mut builder, map, "to")?;
    if to.is_empty() {
        return Err(ActionError::new(
            "handler.to",
            "is required: a list of at least one address",
        ));
    }
    let cc = addresses(&mut builder, map, "cc")?;
    let bcc = addresses(&mut builder, map, "bcc")?;
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(ActionError::new(
            "handler.to",
            format!("to, cc and bcc may name at most {MAX_RECIPIENTS} addresses together"),
        ));
    }
    let reply_to = match map.get("reply_to") {
        None | Some(Json::Null) => None,
        Some(value) => Some(address(&mut builder, "handler.reply_to", value)?),
    };
    let subject = match map.get("subject") {
        Some(Json::Str(text)) => builder.text("handler.subject", text, Kind::Text)?,
        _ => {
            return Err(ActionError::new(
                "handler.subject",
                "is required and must be a string",
            ));
        }
    };
    let text = optional_text(&mut builder, map, ("handler", "text"), Kind::Text)?;
    let html = optional_text(&mut builder, map, ("handler", "html"), Kind::Html)?;
    if text.is_none() && html.is_none() {
        return Err(ActionError::new(
            "handler.text",
            "an email needs a text or an html body (or both)",
        ));
    }
    let timeout_ms = parse_timeout(map.get("timeout_ms"), DEFAULT_TIMEOUT_MS)?;
    let endpoint = match &smtp {
        Some(smtp) => format!("smtp://{}:{}", smtp.host, smtp.port),
        None => DEFAULT_RELAY.to_owned(),
    };
    let mut source = Json::Object(map.clone()).to_value();
    if let Value::Object(members) = &mut source {
        members.remove("type");
    }
    Ok(EmailSpec {
        smtp,
        from,
        to,
        cc,
        bcc,
        reply_to,
        subject,
        text,
        html,
        timeout_ms,
        endpoint,
        templates: builder.finish(),
        source,
    })
}
