//! A JSON template: a JSON value whose strings are templates. A string that is exactly one
//! `{{ expression }}` becomes the expression's JSON value (a number stays a number, an object
//! an object); any other string with template syntax renders to a string. Keys are literal,
//! and parts without templates are kept as they are.

use herald_common::action::ActionError;
use serde_json::Value;

use super::{Builder, Kind, RenderContext, RenderError, Templates, is_template};

/// The filter that turns a sole expression's value into JSON.
pub(super) const JSON_FILTER: &str = "herald_json";

/// `value | herald_json("expression")`: the value's JSON; an undefined value fails, naming
/// the expression.
pub(super) fn json_filter(
    value: minijinja::Value,
    expression: &str,
) -> Result<String, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("`{expression}` is undefined"),
        ));
    }
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string()))
}

/// A compiled JSON template.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// Nothing in it to render.
    Literal(Value),
    /// A string with template syntax: the template's name.
    Text(String),
    /// A string of exactly one expression: the template (its JSON) by name.
    Value(String),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

/// The expression of a string that is exactly one `{{ ... }}`.
fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    (!inner.contains("{{") && !inner.contains("}}") && !inner.trim().is_empty())
        .then(|| inner.trim())
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(text) => is_template(text),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

impl JsonTemplate {
    pub(super) fn compile(
        builder: &mut Builder,
        field: &str,
        value: &Value,
    ) -> Result<Self, ActionError> {
        if !holds_template(value) {
            return Ok(Self::Literal(value.clone()));
        }
        Ok(match value {
            Value::String(text) => match sole_expression(text) {
                Some(expression) => {
                    // `tojson` would print an undefined value as null: this filter fails on one,
                    // naming the expression as written.
                    let named = serde_json::to_string(expression).unwrap_or_default();
                    builder.compile(
                        field,
                        format!("{{{{ ({expression}) | {JSON_FILTER}({named}) }}}}"),
                        Kind::Json,
                    )?;
                    Self::Value(format!("{}:{field}", Kind::Json.tag()))
                }
                None => {
                    builder.compile(field, text.clone(), Kind::Text)?;
                    Self::Text(format!("{}:{field}", Kind::Text.tag()))
                }
            },
            Value::Array(items) => Self::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Self::compile(builder, &format!("{field}[{i}]"), item))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Self::Object(
                map.iter()
                    .map(|(key, item)| {
                        Ok((
                            key.clone(),
                            Self::compile(builder, &format!("{field}.{key}"), item)?,
                        ))
                    })
                    .collect::<Result<_, ActionError>>()?,
            ),
            other => Self::Literal(other.clone()),
        })
    }

    /// The value for one attempt.
    pub fn render(&self, templates: &Templates, ctx: &RenderContext) -> Result<Value, RenderError> {
        Ok(match self {
            Self::Literal(value) => value.clone(),
            Self::Text(name) => Value::String(templates.render_named(name, ctx)?),
            Self::Value(name) => {
                let json = templates.render_named(name, ctx)?;
                serde_json::from_str(&json).map_err(|e| RenderError {
                    field: super::field_of(name).to_owned(),
                    message: format!("does not render to JSON: {e}"),
                })?
            }
            Self::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| item.render(templates, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), item.render(templates, ctx)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
        })
    }
}
