//! Templates over the event: Jinja syntax (minijinja), compiled once when an action is saved or
//! read, rendered for each attempt in a sandbox.
//!
//! The sandbox: no template can load another (minijinja is built without `include`, `import`
//! and `extends`) and none reaches files or the network; each render has a budget of work and
//! memory ([`FUEL`]) and of output ([`MAX_OUTPUT`]); a value that is missing fails the render
//! when it is printed or iterated (testing it with `if`, `is defined` or `default` is fine),
//! naming the expression. A null prints as nothing, an object or list as JSON.
//!
//! What a template may refer to is checked when it is compiled: the context's names
//! ([`ROOTS`]) and the environment's functions; secrets only as `secrets.NAME`, so that the
//! names an action uses are known (checked against the tenant's secrets at save, and the only
//! ones opened for an attempt).
//!
//! Each template is one of a few [`Kind`]s, carried in its name: text, HTML (autoescaped), a
//! URL (each interpolated value percent-encoded), or one JSON value (an exact `{{ expr }}`
//! string of a JSON body, which keeps the expression's type).

mod context;
mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use herald_common::action::ActionError;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

pub use context::{RenderContext, Steps};
pub use json::JsonTemplate;

/// Work (and memory, about 64 bytes a unit) one render may spend: some thousands of times
/// what a request template needs, and small enough that no template can stall an executor.
pub const FUEL: u64 = 100_000;
/// Longest output of one render.
pub const MAX_OUTPUT: usize = 1024 * 1024;
/// The names a template may start from (`steps` only in a workflow's steps).
pub const ROOTS: [&str; 5] = ["event", "action", "execution", "tenant", "secrets"];

/// Everything of a value percent-encoded but the unreserved characters (RFC 3986).
const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a template's output is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// An HTML body: interpolated values are escaped (`| safe` opts out).
    Html,
    /// A URL's path (after its fixed scheme, host and port): interpolated values are
    /// percent-encoded, so that a `/` or `?` in a value cannot change the path's shape (`| safe`
    /// opts out).
    Url,
    /// A JSON value: the output is the expression's JSON.
    Json,
}

impl Kind {
    fn tag(self) -> char {
        match self {
            Self::Text => 't',
            Self::Html => 'h',
            Self::Url => 'u',
            Self::Json => 'j',
        }
    }
}

/// A field's text: as written when it holds no template, or a compiled template by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Literal(String),
    Template(String),
}

impl Text {
    /// The literal text, when there is no template in it.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Self::Literal(text) => Some(text),
            Self::Template(_) => None,
        }
    }
}

/// Why a render failed: the field, and what went wrong in the words of the template's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Whether `text` holds template syntax at all.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A handler's compiled templates, cheap to clone and shared by every attempt.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// The tenant secrets the templates refer to, each with the first field that does.
    secrets: Arc<BTreeMap<String, String>>,
    /// The workflow steps the templates read (`steps.ID`), each with the first field that does.
    steps: Arc<BTreeMap<String, String>>,
}

/// Where templates being compiled will render, for the names beyond [`ROOTS`] they may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An action's handler.
    Action,
    /// A workflow's step: `steps` too.
    Step,
    /// A workflow's `on_failure`: `steps` and `error`.
    OnFailure,
}

thread_local! {
    static SCOPE: std::cell::Cell<Scope> = const { std::cell::Cell::new(Scope::Action) };
}

/// Runs `parse` (a workflow's step, or its handler, being checked) with the names `scope`
/// adds. The handlers' parsers each make their own [`Builder`]; this reaches all of them
/// without a parameter each would pass on and none but a workflow uses.
pub fn in_scope<T>(scope: Scope, parse: impl FnOnce() -> T) -> T {
    let before = SCOPE.with(|cell| cell.replace(scope));
    let parsed = parse();
    SCOPE.with(|cell| cell.set(before));
    parsed
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.templates().map(|(name, _)| name).collect();
        f.debug_struct("Templates")
            .field("templates", &names)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl Templates {
    /// The secrets (`secrets.NAME`) the templates use, each with the first field using it.
    pub fn secrets(&self) -> &BTreeMap<String, String> {
        &self.secrets
    }

    /// The workflow steps (`steps.ID`) the templates read, each with the first field reading it.
    pub fn steps(&self) -> &BTreeMap<String, String> {
        &self.steps
    }

    /// Whether there is anything to render (nothing to build a context for if not).
    pub fn is_empty(&self) -> bool {
        self.env.templates().next().is_none()
    }

    /// Renders `text` for one attempt.
    pub fn render<'t>(
        &self,
        text: &'t Text,
        ctx: &RenderContext,
    ) -> Result<std::borrow::Cow<'t, str>, RenderError> {
        match text {
            Text::Literal(text) => Ok(text.as_str().into()),
            Text::Template(name) => self.render_named(name, ctx).map(Into::into),
        }
    }

    fn render_named(&self, name: &str, ctx: &RenderContext) -> Result<String, RenderError> {
        let field = field_of(name);
        let template = self.env.get_template(name).map_err(|e| RenderError {
            field: field.to_owned(),
            message: e.to_string(),
        })?;
        let output = template
            .render(ctx.value())
            .map_err(|e| render_error(field, &e))?;
        if output.len() > MAX_OUTPUT {
            return Err(RenderError {
                field: field.to_owned(),
                message: format!("renders more than {MAX_OUTPUT} bytes"),
            });
        }
        Ok(output)
    }
}

/// The field a template's name stands for (its name without the kind's tag).
fn field_of(name: &str) -> &str {
    name.get(2..).unwrap_or(name)
}

fn render_error(field: &str, error: &minijinja::Error) -> RenderError {
    let detail = error.detail().unwrap_or_default();
    let message = match error.kind() {
        minijinja::ErrorKind::UndefinedError => {
            let missing = detail
                .strip_prefix('`')
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_default();
            match missing.strip_prefix("secrets.") {
                Some(secret) => format!(
                    "the secret {secret:?} does not exist (was it deleted?): store it with \
                     PUT /v1/secrets/{secret}"
                ),
                None if !detail.is_empty() => format!("{detail} (line {})", line(error)),
                None => format!("a value is undefined (line {})", line(error)),
            }
        }
        minijinja::ErrorKind::OutOfFuel => {
            "takes more work than a render may (a loop too long, a string too large)".to_owned()
        }
        _ if !detail.is_empty() => format!("{detail} (line {})", line(error)),
        _ => format!("{} (line {})", error.kind(), line(error)),
    };
    RenderError {
        field: field.to_owned(),
        message,
    }
}

fn line(error: &minijinja::Error) -> usize {
    error.line().unwrap_or(1)
}

/// Compiles a handler's templates, each named by its field.
pub struct Builder {
    env: Environment<'static>,
    secrets: BTreeMap<String, String>,
    /// `Some` where templates may read `steps` (in a workflow's steps): those they read.
    steps: Option<BTreeMap<String, String>>,
    /// Whether templates may read `error` (a workflow's `on_failure`).
    error: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|name| {
            if name.starts_with(Kind::Html.tag()) {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(format_value);
        env.add_filter(json::JSON_FILTER, json::json_filter);
        Self {
            env,
            secrets: BTreeMap::new(),
            steps: (SCOPE.with(|cell| cell.get()) != Scope::Action).then(BTreeMap::new),
            error: SCOPE.with(|cell| cell.get()) == Scope::OnFailure,
        }
    }

    /// `source` of `field` as a template of `kind`, or as it is when it holds no template.
    pub fn text(&mut self, field: &str, source: &str, kind: Kind) -> Result<Text, ActionError> {
        if !is_template(source) {
            return Ok(Text::Literal(source.to_owned()));
        }
        self.compile(field, source.to_owned(), kind)?;
        Ok(Text::Template(format!("{}:{field}", kind.tag())))
    }

    /// A JSON value of `field` whose strings are templates.
    pub fn json(
        &mut self,
        field: &str,
        value: &serde_json::Value,
    ) -> Result<JsonTemplate, ActionError> {
        JsonTemplate::compile(self, field, value)
    }

    pub(crate) fn compile(
        &mut self,
        field: &str,
        source: String,
        kind: Kind,
    ) -> Result<(), ActionError> {
        let name = format!("{}:{field}", kind.tag());
        self.env
            .add_template_owned(name.clone(), source.clone())
            .map_err(|e| syntax_error(field, &source, &e))?;
        let template = self
            .env
            .get_template(&name)
            .map_err(|e| ActionError::new(field, e.to_string()))?;
        for variable in template.undeclared_variables(true) {
            self.check_variable(field, &variable)?;
        }
        Ok(())
    }

    fn check_variable(&mut self, field: &str, variable: &str) -> Result<(), ActionError> {
        let (root, rest) = match variable.split_once('.') {
            Some((root, rest)) => (root, Some(rest)),
            None => (variable, None),
        };
        if root == "secrets" {
            let Some(name) = rest.map(|r| r.split('.').next().unwrap_or(r)) else {
                return Err(ActionError::new(
                    field,
                    "refers to secrets as a whole: name one, as {{ secrets.NAME }}",
                ));
            };
            if !herald_common::store::valid_secret_name(name) {
                return Err(ActionError::new(
                    field,
                    format!("secrets.{name}: a secret's name is [a-z0-9_]{{1,64}}"),
                ));
            }
            self.secrets
                .entry(name.to_owned())
                .or_insert_with(|| field.to_owned());
            return Ok(());
        }
        if root == "steps"
            && let Some(steps) = &mut self.steps
        {
            let Some(id) = rest.map(|r| r.split('.').next().unwrap_or(r)) else {
                return Err(ActionError::new(
                    field,
                    "refers to steps as a whole: name one, as {{ steps.ID.output }}",
                ));
            };
            steps
                .entry(id.to_owned())
                .or_insert_with(|| field.to_owned());
            return Ok(());
        }
        if (root == "error" && self.error)
            || ROOTS.contains(&root)
            || self.env.globals().any(|(name, _)| name == root)
        {
            return Ok(());
        }
        Err(ActionError::new(
            field,
            format!(
                "refers to {root:?}, which templates do not have; they have {}",
                ROOTS.join(", ")
            ),
        ))
    }

    pub fn finish(self) -> Templates {
        Templates {
            env: Arc::new(self.env),
            secrets: Arc::new(self.secrets),
            steps: Arc::new(self.steps.unwrap_or_default()),
        }
    }
}

/// A syntax error as the author can find it: the field, line and column, and what is wrong.
fn syntax_error(field: &str, source: &str, error: &minijinja::Error) -> ActionError {
    let detail = error.detail().unwrap_or("invalid template");
    let at = match error.range() {
        Some(range) => {
            let before = &source[..range.start.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}")
        }
        None => format!("line {}", error.line().unwrap_or(1)),
    };
    ActionError::new(field, format!("template syntax error at {at}: {detail}"))
}

/// How a value is printed: null as nothing, objects and lists as JSON, values in a URL
/// percent-encoded, in HTML escaped.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;

    if value.is_none() {
        return Ok(());
    }
    let structured = matches!(value.kind(), ValueKind::Map | ValueKind::Seq);
    let url = state.name().starts_with(Kind::Url.tag());
    if value.is_safe() || !(structured || url) {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = if structured {
        serde_json::to_string(value).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
        })?
    } else {
        value.to_string()
    };
    if url {
        write!(out, "{}", utf8_percent_encode(&text, URL_COMPONENT))
            .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "write"))
    } else {
        minijinja::escape_formatter(out, state, &Value::from(text))
    }
}

#[cfg(test)]
mod tests;
