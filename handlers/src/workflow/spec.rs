//! A `workflow` handler's settings: its steps, checked once when the action is saved (or read
//! back): ids, dependencies (no cycle, none unknown), what each step's templates read of
//! `steps` (only its ancestors), and each step's handler, `set` values and `if`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use herald_common::action::{ActionError, MAX_DELAY_S, RetryPolicy, reject_unknown};
use herald_common::json_tree::{Json, Object};
use herald_common::workflow::{Graph, Node};
use serde_json::Value;

use crate::handler::Handler;
use crate::template::{self, Builder, JsonTemplate, Kind, Scope, Templates, Text};
use crate::webhook::MAX_TIMEOUT_MS;

/// Most steps in one workflow: enough for any flow a person reads, few enough that deciding a
/// run's next steps (done on every step's end) stays a small read.
pub const MAX_STEPS: usize = 64;
/// Most values one `set` step computes.
const MAX_SET: usize = 64;

/// What a step does once its dependencies have succeeded (and its delay passed).
#[derive(Debug, Clone)]
pub enum StepRun {
    /// A handler of any type but `workflow`.
    Handler(Box<Handler>),
    /// Named values computed from templates: the step's output.
    Set(Vec<(String, JsonTemplate)>),
    /// Nothing: a step that only waits (`delay_s`, `at`).
    Wait,
}

/// One step.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub id: String,
    pub depends_on: Vec<String>,
    pub run: StepRun,
    /// `if`: the step runs only when this renders to a true value.
    pub condition: Option<JsonTemplate>,
    /// Its `set` and `if` templates, named `steps.ID.set.NAME` and `steps.ID.if`.
    pub templates: Templates,
    /// The step's own attempts and delays; one attempt when not given.
    pub retry: RetryPolicy,
    /// A bound on each attempt, over the handler's own.
    pub timeout_ms: Option<u32>,
    /// How long the step waits, once it may start, before its attempt.
    pub delay_s: Option<u32>,
    /// `at`: a template giving the time (RFC 3339) before which the step does not run.
    pub at: Option<Text>,
}

/// A workflow: its steps in the order given, and what runs once if one fails for good.
#[derive(Clone)]
pub struct WorkflowSpec {
    pub steps: Vec<StepSpec>,
    pub on_failure: Option<Box<Handler>>,
    /// The steps and their dependencies, as a run's progress is decided on.
    graph: Arc<Graph>,
    /// As written (without `type`): what is stored, and what reads start from.
    pub(super) source: Value,
}

impl std::fmt::Debug for WorkflowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowSpec")
            .field(
                "steps",
                &self.steps.iter().map(|s| &s.id).collect::<Vec<_>>(),
            )
            .field("on_failure", &self.on_failure.is_some())
            .finish()
    }
}

impl PartialEq for WorkflowSpec {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl serde::Serialize for WorkflowSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Each handler as it stores itself (a generated signing secret included).
        let mut source = self.source.clone();
        if let Some(steps) = source.get_mut("steps").and_then(Value::as_array_mut) {
            for (value, step) in steps.iter_mut().zip(&self.steps) {
                if let StepRun::Handler(handler) = &step.run {
                    value["handler"] =
                        serde_json::to_value(handler).map_err(serde::ser::Error::custom)?;
                }
            }
        }
        if let Some(handler) = &self.on_failure {
            source["on_failure"] =
                serde_json::to_value(handler).map_err(serde::ser::Error::custom)?;
        }
        source.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for WorkflowSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Json::Object(map) = Json::from_value(&value) else {
            return Err(serde::de::Error::custom("a workflow handler is an object"));
        };
        parse(&map).map_err(serde::de::Error::custom)
    }
}

impl WorkflowSpec {
    /// The steps and their dependencies, as a run's progress is decided on.
    pub fn graph(&self) -> Arc<Graph> {
        self.graph.clone()
    }

    /// The step named `id`.
    pub fn step(&self, id: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// Every handler of the workflow (its steps', then `on_failure`).
    pub fn handlers(&self) -> impl Iterator<Item = &Handler> {
        self.steps
            .iter()
            .filter_map(|step| match &step.run {
                StepRun::Handler(handler) => Some(handler.as_ref()),
                _ => None,
            })
            .chain(self.on_failure.as_deref())
    }
}

const FIELDS: [&str; 3] = ["type", "steps", "on_failure"];
const STEP_FIELDS: [&str; 9] = [
    "id",
    "depends_on",
    "handler",
    "set",
    "if",
    "retry",
    "timeout_ms",
    "delay_s",
    "at",
];

/// Checks a `workflow` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<WorkflowSpec, ActionError> {
    reject_unknown(map, &FIELDS, "handler")?;
    let Some(Json::Array(items)) = map.get("steps") else {
        return Err(ActionError::new(
            "handler.steps",
            "is required: a list of steps",
        ));
    };
    if items.is_empty() || items.len() > MAX_STEPS {
        return Err(ActionError::new(
            "handler.steps",
            format!("must hold 1 to {MAX_STEPS} steps, not {}", items.len()),
        ));
    }
    let mut steps: Vec<StepSpec> = Vec::with_capacity(items.len());
    // What each step's templates read of `steps`, with the field that reads it.
    let mut reads: Vec<BTreeMap<String, String>> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let (step, read) = parse_step(index, item)?;
        if steps.iter().any(|s| s.id == step.id) {
            return Err(ActionError::new(
                format!("handler.steps[{index}].id"),
                format!("{:?} is the id of an earlier step: ids are unique", step.id),
            ));
        }
        steps.push(step);
        reads.push(read);
    }
    check_graph(&steps, &reads)?;
    let on_failure = match map.get("on_failure") {
        None | Some(Json::Null) => None,
        Some(value) => {
            let at = "handler.on_failure";
            let handler = parse_handler(at, value, Scope::OnFailure)?;
            let reads = handler.templates().map(|t| t.steps().clone());
            for (read, field) in reads.iter().flatten() {
                if !steps.iter().any(|s| &s.id == read) {
                    return Err(ActionError::new(
                        at,
                        format!("{field} reads steps.{read}, which is not a step of this workflow"),
                    ));
                }
            }
            Some(Box::new(handler))
        }
    };
    let mut source = Json::Object(map.clone()).to_value();
    if let Some(object) = source.as_object_mut() {
        object.remove("type");
    }
    let graph = Arc::new(Graph {
        steps: steps
            .iter()
            .map(|step| Node {
                id: step.id.clone(),
                depends_on: step.depends_on.clone(),
            })
            .collect(),
        on_failure: on_failure.is_some(),
    });
    Ok(WorkflowSpec {
        steps,
        on_failure,
        graph,
        source,
    })
}

fn parse_step(
    index: usize,
    item: &Json<'_>,
) -> Result<(StepSpec, BTreeMap<String, String>), ActionError> {
    let mut builder = template::in_scope(Scope::Step, Builder::new);
    let builder = &mut builder;
    let at = format!("handler.steps[{index}]");
    let Json::Object(map) = item else {
        return Err(ActionError::new(at, "a step is an object"));
    };
    reject_unknown(map, &STEP_FIELDS, &at)?;
    let id = match map.get("id").and_then(Json::as_str) {
        Some(id) if valid_step_id(id) => id.to_owned(),
        _ => {
            return Err(ActionError::new(
                format!("{at}.id"),
                "is required: [a-z_][a-z0-9_]{0,63}, unique in the workflow",
            ));
        }
    };
    let depends_on = match map.get("depends_on") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(ids)) => {
            let mut seen = BTreeSet::new();
            let mut list = Vec::with_capacity(ids.len());
            for (i, dep) in ids.iter().enumerate() {
                let Some(dep) = dep.as_str() else {
                    return Err(ActionError::new(
                        format!("{at}.depends_on[{i}]"),
                        "must be a step id",
                    ));
                };
                if seen.insert(dep) {
                    list.push(dep.to_owned());
                }
            }
            list
        }
        Some(_) => {
            return Err(ActionError::new(
                format!("{at}.depends_on"),
                "must be a list of step ids",
            ));
        }
    };
    let mut reads = BTreeMap::new();
    let run = match (map.get("handler"), map.get("set")) {
        (Some(_), Some(_)) => {
            return Err(ActionError::new(
                format!("{at}.set"),
                "a step has a handler or set values, not both",
            ));
        }
        (Some(value), None) => {
            let handler = parse_handler(&format!("{at}.handler"), value, Scope::Step)?;
            if let Some(templates) = handler.templates() {
                reads.extend(templates.steps().clone());
            }
            StepRun::Handler(Box::new(handler))
        }
        (None, Some(Json::Object(values))) => {
            if values.is_empty() || values.len() > MAX_SET {
                return Err(ActionError::new(
                    format!("{at}.set"),
                    format!("must name 1 to {MAX_SET} values"),
                ));
            }
            let mut set = Vec::with_capacity(values.len());
            for (name, value) in values.iter() {
                let field = format!("steps.{id}.set.{name}");
                set.push((name.to_owned(), builder.json(&field, &value.to_value())?));
            }
            StepRun::Set(set)
        }
        (None, Some(_)) => {
            return Err(ActionError::new(
                format!("{at}.set"),
                "must be an object of named values",
            ));
        }
        (None, None) if map.contains_key("delay_s") || map.contains_key("at") => StepRun::Wait,
        (None, None) => {
            return Err(ActionError::new(
                at,
                "a step needs a handler, set values, or a delay_s to wait",
            ));
        }
    };
    let condition = match map.get("if") {
        None | Some(Json::Null) => None,
        Some(Json::Str(text)) => {
            Some(builder.json(&format!("steps.{id}.if"), &Value::from(text.as_ref()))?)
        }
        Some(_) => {
            return Err(ActionError::new(
                format!("{at}.if"),
                "must be a template, as \"{{ steps.ID.output.NAME }}\"",
            ));
        }
    };
    let retry = match map.get("retry") {
        None | Some(Json::Null) => RetryPolicy::Delays {
            max_attempts: 1,
            delays_s: Vec::new(),
        },
        Some(value) => RetryPolicy::parse(value).map_err(|e| prefixed(&at, e))?,
    };
    let wait_until = match map.get("at") {
        None | Some(Json::Null) => None,
        Some(Json::Str(text)) if !map.contains_key("delay_s") => {
            Some(builder.text(&format!("steps.{id}.at"), text, Kind::Text)?)
        }
        Some(Json::Str(_)) => {
            return Err(ActionError::new(
                format!("{at}.at"),
                "a step waits for delay_s or until at, not both",
            ));
        }
        Some(_) => {
            return Err(ActionError::new(
                format!("{at}.at"),
                "must be a template giving an RFC 3339 time, as \"{{ event.data.remind_at }}\"",
            ));
        }
    };
    let templates = std::mem::take(builder).finish();
    reads.extend(templates.steps().clone());
    let timeout_ms = bounded(
        map.get("timeout_ms"),
        &format!("{at}.timeout_ms"),
        1,
        u64::from(MAX_TIMEOUT_MS),
    )?;
    let delay_s = bounded(
        map.get("delay_s"),
        &format!("{at}.delay_s"),
        0,
        u64::from(MAX_DELAY_S),
    )?;
    Ok((
        StepSpec {
            id,
            depends_on,
            run,
            condition,
            templates,
            retry,
            timeout_ms,
            delay_s,
            at: wait_until,
        },
        reads,
    ))
}

/// A step's (or on_failure's) handler: any type but a workflow, its errors named under `at`.
fn parse_handler(at: &str, value: &Json<'_>, scope: Scope) -> Result<Handler, ActionError> {
    if let Json::Object(map) = value
        && map.get("type").and_then(Json::as_str) == Some("workflow")
    {
        return Err(ActionError::new(
            format!("{at}.type"),
            "a workflow's step cannot be a workflow",
        ));
    }
    template::in_scope(scope, || Handler::parse(value)).map_err(|e| prefixed_handler(at, e))
}

/// An error a handler's parser names `handler.…`, renamed to the step's `at.…`.
fn prefixed_handler(at: &str, error: ActionError) -> ActionError {
    let field = match error.field.strip_prefix("handler") {
        Some(rest) => format!("{at}{rest}"),
        None => format!("{at}.{}", error.field),
    };
    ActionError::new(field, error.message)
}

fn prefixed(at: &str, error: ActionError) -> ActionError {
    ActionError::new(format!("{at}.{}", error.field), error.message)
}

fn bounded(
    value: Option<&Json<'_>>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u32>, ActionError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(value) => match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n as u32)),
            _ => Err(ActionError::new(
                field,
                format!("must be a whole number from {min} to {max}"),
            )),
        },
    }
}

fn valid_step_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && id.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Every `depends_on` names a step; there is no cycle; a step reads (`steps.ID`) only its
/// ancestors. `reads` holds, per step, what its handler's templates read; the `set` and `if`
/// templates are named `steps.ID.…` in `templates` and checked by their names.
fn check_graph(steps: &[StepSpec], reads: &[BTreeMap<String, String>]) -> Result<(), ActionError> {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (i, step) in steps.iter().enumerate() {
        for dep in &step.depends_on {
            if !index.contains_key(dep.as_str()) {
                return Err(ActionError::new(
                    format!("handler.steps[{i}].depends_on"),
                    format!("{dep:?} is not a step of this workflow"),
                ));
            }
            if dep == &step.id {
                return Err(ActionError::new(
                    format!("handler.steps[{i}].depends_on"),
                    format!("step {:?} depends on itself", step.id),
                ));
            }
        }
    }
    // Ancestors by a walk from each step; a walk that comes back to its start is a cycle.
    for (i, step) in steps.iter().enumerate() {
        let mut ancestors = BTreeSet::new();
        let mut todo: Vec<&str> = step.depends_on.iter().map(String::as_str).collect();
        while let Some(id) = todo.pop() {
            if id == step.id {
                return Err(ActionError::new(
                    format!("handler.steps[{i}].depends_on"),
                    format!("step {:?} is part of a dependency cycle", step.id),
                ));
            }
            if ancestors.insert(id) {
                todo.extend(steps[index[id]].depends_on.iter().map(String::as_str));
            }
        }
        for (read, field) in &reads[i] {
            if !ancestors.contains(read.as_str()) {
                return Err(ActionError::new(
                    format!("handler.steps[{i}]"),
                    format!(
                        "{field} reads steps.{read}, which is not a step this one depends on \
                         (directly or through others)"
                    ),
                ));
            }
        }
    }
    Ok(())
}
