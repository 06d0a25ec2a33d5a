//! An `http` handler's `auth`: `bearer` (a token), `basic` (a user and password) or
//! `oauth2_client_credentials` (a token fetched from the provider's token endpoint, see
//! [`crate::oauth`]). Every credential may be a template (`{{ secrets.NAME }}`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::{Json, Object};

use crate::destination::parse_url;
use crate::oauth::{ClientAuth, TokenRequest};
use crate::template::{Builder, Kind, RenderContext, RenderError, Templates, Text};

/// The auth types, as `auth.type` names them.
pub const AUTH_TYPES: [&str; 3] = ["bearer", "basic", "oauth2_client_credentials"];

/// The JSON pointers of an `http` handler's credentials (masked in reads).
pub const CREDENTIALS: [&str; 3] = ["/auth/token", "/auth/password", "/auth/client_secret"];

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Bearer {
        token: Text,
    },
    Basic {
        username: Text,
        password: Text,
    },
    OAuth2 {
        token_url: url::Url,
        client_id: Text,
        client_secret: Text,
        scope: Option<String>,
        audience: Option<String>,
        client_auth: ClientAuth,
    },
}

/// Auth as one attempt uses it.
pub enum Rendered {
    /// The `authorization` header's value.
    Header(String),
    /// A token to fetch (or take from the cache) first.
    Token(TokenRequest),
}

fn required(map: &Object<'_>, key: &str, builder: &mut Builder) -> Result<Text, ActionError> {
    let field = format!("handler.auth.{key}");
    match map.get(key) {
        Some(Json::Str(text)) if !text.is_empty() => builder.text(&field, text, Kind::Text),
        _ => Err(ActionError::new(
            field,
            "is required and must be a non-empty string",
        )),
    }
}

fn optional(map: &Object<'_>, key: &str) -> Result<Option<String>, ActionError> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(text)) if !text.is_empty() && text.len() <= 1024 => {
            Ok(Some(text.as_ref().to_owned()))
        }
        Some(_) => Err(ActionError::new(
            format!("handler.auth.{key}"),
            "must be a string of 1 to 1024 bytes",
        )),
    }
}

impl Auth {
    pub fn parse(value: &Json<'_>, builder: &mut Builder) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("handler.auth", "must be an object"));
        };
        match map.get("type").and_then(Json::as_str) {
            Some("bearer") => {
                reject_unknown(map, &["type", "token"], "handler.auth")?;
                Ok(Self::Bearer {
                    token: required(map, "token", builder)?,
                })
            }
            Some("basic") => {
                reject_unknown(map, &["type", "username", "password"], "handler.auth")?;
                Ok(Self::Basic {
                    username: required(map, "username", builder)?,
                    password: required(map, "password", builder)?,
                })
            }
            Some("oauth2_client_credentials") => {
                let fields = [
                    "type",
                    "token_url",
                    "client_id",
                    "client_secret",
                    "scope",
                    "audience",
                    "client_auth",
                ];
                reject_unknown(map, &fields, "handler.auth")?;
                let token_url = match map.get("token_url") {
                    Some(Json::Str(url)) if !crate::template::is_template(url) => {
                        parse_url("handler.auth.token_url", url)?
                    }
                    _ => {
                        return Err(ActionError::new(
                            "handler.auth.token_url",
                            "is required and must be a URL, written out (no templates)",
                        ));
                    }
                };
                let client_auth = match map.get("client_auth").and_then(Json::as_str) {
                    None if !map.contains_key("client_auth") => ClientAuth::Basic,
                    Some("basic") => ClientAuth::Basic,
                    Some("body") => ClientAuth::Body,
                    _ => {
                        return Err(ActionError::new(
                            "handler.auth.client_auth",
                            "must be \"basic\" (the default) or \"body\"",
                        ));
                    }
                };
                Ok(Self::OAuth2 {
                    token_url,
                    client_id: required(map, "client_id", builder)?,
                    client_secret: required(map, "client_secret", builder)?,
                    scope: optional(map, "scope")?,
                    audience: optional(map, "audience")?,
                    client_auth,
                })
            }
            Some(other) => Err(ActionError::new(
                "handler.auth.type",
                format!(
                    "unknown auth type {other:?}; known: {}",
                    AUTH_TYPES.join(", ")
                ),
            )),
            None => Err(ActionError::new("handler.auth.type", "is required")),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bearer { .. } => "bearer",
            Self::Basic { .. } => "basic",
            Self::OAuth2 { .. } => "oauth2_client_credentials",
        }
    }

    /// The credentials for one attempt.
    pub fn render(
        &self,
        templates: &Templates,
        ctx: &RenderContext,
    ) -> Result<Rendered, RenderError> {
        Ok(match self {
            Self::Bearer { token } => {
                Rendered::Header(format!("Bearer {}", templates.render(token, ctx)?))
            }
            Self::Basic { username, password } => {
                let pair = format!(
                    "{}:{}",
                    templates.render(username, ctx)?,
                    templates.render(password, ctx)?
                );
                Rendered::Header(format!("Basic {}", BASE64.encode(pair)))
            }
            Self::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
            } => Rendered::Token(TokenRequest {
                token_url: token_url.clone(),
                client_id: templates.render(client_id, ctx)?.into_owned(),
                client_secret: templates.render(client_secret, ctx)?.into_owned(),
                scope: scope.clone(),
                audience: audience.clone(),
                client_auth: *client_auth,
            }),
        })
    }
}
