//! A request body made from templates, as the `http` handler (and a `webhook` replacing its
//! envelope) takes it: `body` as a JSON template (an object or array) or a text template (a
//! string, sent with `content_type`), or `form` (fields sent form-encoded).

use herald_common::action::ActionError;
use herald_common::json_tree::{At, Json, Object};

use crate::template::{Builder, JsonTemplate, Kind, RenderContext, RenderError, Templates, Text};

/// Largest body a template may render.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

const FORM: &str = "application/x-www-form-urlencoded";

/// What a body is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyTemplate {
    Json {
        template: JsonTemplate,
        content_type: String,
    },
    Text {
        template: Text,
        content_type: String,
    },
    /// Fields in order, each value a template; sent form-encoded.
    Form(Vec<(String, Text)>),
}

fn content_type(map: &Object<'_>, default: &str) -> Result<String, ActionError> {
    match map.get("content_type") {
        None => Ok(default.to_owned()),
        Some(Json::Str(text))
            if !text.is_empty()
                && text.len() <= 256
                && text.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            Ok(text.as_ref().to_owned())
        }
        Some(_) => Err(ActionError::new(
            "handler.content_type",
            "must be a media type of at most 256 printable ASCII characters",
        )),
    }
}

impl BodyTemplate {
    /// The body of a handler's `body`, `form` and `content_type`, if it has one.
    pub fn parse(map: &Object<'_>, builder: &mut Builder) -> Result<Option<Self>, ActionError> {
        match (map.get("body"), map.get("form")) {
            (Some(_), Some(_)) => Err(ActionError::new(
                "handler.form",
                "give either body or form, not both",
            )),
            (None, None) => {
                if map.contains_key("content_type") {
                    return Err(ActionError::new(
                        "handler.content_type",
                        "describes a body, and there is none",
                    ));
                }
                Ok(None)
            }
            (Some(Json::Str(text)), None) => Ok(Some(Self::Text {
                template: builder.text("handler.body", text, Kind::Text)?,
                content_type: content_type(map, "text/plain; charset=utf-8")?,
            })),
            (Some(value @ (Json::Object(_) | Json::Array(_))), None) => Ok(Some(Self::Json {
                template: builder.json("handler.body", &value.to_value())?,
                content_type: content_type(map, "application/json")?,
            })),
            (Some(_), None) => Err(ActionError::new(
                "handler.body",
                "must be a JSON template (an object or an array) or a text template (a string)",
            )),
            (None, Some(Json::Object(fields))) => {
                if map.contains_key("content_type") {
                    return Err(ActionError::new(
                        "handler.content_type",
                        format!("a form is always sent as {FORM}"),
                    ));
                }
                let root = At::Root("handler.form");
                let mut form = Vec::new();
                for (name, value) in fields.iter() {
                    let at = root.key(name).to_string();
                    let Json::Str(value) = value else {
                        return Err(ActionError::new(at, "must be a string"));
                    };
                    form.push((name.to_owned(), builder.text(&at, value, Kind::Text)?));
                }
                Ok(Some(Self::Form(form)))
            }
            (None, Some(_)) => Err(ActionError::new(
                "handler.form",
                "must be an object of strings",
            )),
        }
    }

    /// The content type it is sent with.
    pub fn content_type(&self) -> &str {
        match self {
            Self::Json { content_type, .. } | Self::Text { content_type, .. } => content_type,
            Self::Form(_) => FORM,
        }
    }

    /// The body's bytes for one attempt.
    pub fn render(
        &self,
        templates: &Templates,
        ctx: &RenderContext,
    ) -> Result<Vec<u8>, RenderError> {
        let bytes = match self {
            Self::Json { template, .. } => {
                let value = template.render(templates, ctx)?;
                serde_json::to_vec(&value).map_err(|e| RenderError {
                    field: "handler.body".into(),
                    message: e.to_string(),
                })?
            }
            Self::Text { template, .. } => {
                templates.render(template, ctx)?.into_owned().into_bytes()
            }
            Self::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    form.append_pair(name, &templates.render(value, ctx)?);
                }
                form.finish().into_bytes()
            }
        };
        if bytes.len() > MAX_BODY_LEN {
            return Err(RenderError {
                field: "handler.body".into(),
                message: format!("renders more than {MAX_BODY_LEN} bytes"),
            });
        }
        Ok(bytes)
    }
}
