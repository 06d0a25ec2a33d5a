//! What reads show of a workflow: the steps as written, each handler as its own view shows it
//! (credentials masked).

use herald_common::action::{ActionError, HandlerSpec};
use serde_json::{Value, json};

use super::spec::{StepRun, WorkflowSpec};

pub fn view(spec: &WorkflowSpec, reveal_secrets: bool) -> Value {
    let mut shown = spec.source.clone();
    if let Some(steps) = shown.get_mut("steps").and_then(Value::as_array_mut) {
        for (value, step) in steps.iter_mut().zip(&spec.steps) {
            if let StepRun::Handler(handler) = &step.run {
                value["handler"] = handler.view(reveal_secrets);
            }
        }
    }
    if let Some(handler) = &spec.on_failure {
        shown["on_failure"] = handler.view(reveal_secrets);
    }
    let mut object = json!({"type": "workflow"});
    if let (Some(into), Some(from)) = (object.as_object_mut(), shown.as_object()) {
        into.extend(from.clone());
    }
    object
}

/// Carries over, step by step (by id), what each step's handler keeps from the stored one.
pub fn keep_stored(
    spec: &mut WorkflowSpec,
    stored: Option<&WorkflowSpec>,
) -> Result<(), ActionError> {
    for step in &mut spec.steps {
        let StepRun::Handler(handler) = &mut step.run else {
            continue;
        };
        let before = stored
            .and_then(|s| s.step(&step.id))
            .and_then(|s| match &s.run {
                StepRun::Handler(handler) => Some(handler.as_ref()),
                _ => None,
            });
        handler.keep_stored(before).map_err(|e| {
            ActionError::new(format!("handler.steps.{}.{}", step.id, e.field), e.message)
        })?;
    }
    if let Some(handler) = &mut spec.on_failure {
        let before = stored.and_then(|s| s.on_failure.as_deref());
        handler
            .keep_stored(before)
            .map_err(|e| ActionError::new(format!("handler.on_failure.{}", e.field), e.message))?;
    }
    Ok(())
}
