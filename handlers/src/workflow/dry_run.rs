//! A workflow walked for one event without sending anything (`POST /v1/actions/{id}/test`):
//! which steps would run, which `if`s hold, each step's rendered request. A step whose handler
//! would send reads back, as its output, the sample the test gives for it (`null` without
//! one), so later steps' templates can be tried against a realistic answer.

use std::collections::BTreeMap;

use herald_common::status::StepStatus;
use herald_common::workflow::progress;
use serde_json::{Value, json};

use super::execute::{condition_holds, set_values};
use super::spec::{StepRun, WorkflowSpec};
use crate::context::Context;
use crate::template::Steps;

/// The walk, step by step in the order they would start. `ctx.steps`' outputs are the samples.
pub fn dry_run(spec: &WorkflowSpec, ctx: &Context<'_>) -> Value {
    let samples = ctx.steps.map(|s| s.outputs.clone()).unwrap_or_default();
    let graph = spec.graph();
    let mut states: BTreeMap<String, StepStatus> = BTreeMap::new();
    let mut outputs: BTreeMap<String, Value> = BTreeMap::new();
    let mut walked = Vec::new();
    loop {
        let next = progress(&graph, &states);
        for id in &next.skip {
            states.insert(id.clone(), StepStatus::Skipped);
            walked.push(json!({"step": id, "would": "skip",
                "because": "a step it depends on would be skipped"}));
        }
        if next.start.is_empty() {
            break;
        }
        for id in next.start {
            let Some(step) = spec.step(&id) else { continue };
            let seen = Steps {
                outputs: outputs.clone(),
                error: None,
            };
            let step_ctx = Context {
                job: ctx.job,
                now: ctx.now,
                action_name: ctx.action_name,
                secrets: ctx.secrets,
                outbound: ctx.outbound,
                publisher: None,
                steps: Some(&seen),
            };
            let render = step_ctx.render_context();
            let mut entry = json!({"step": id, "depends_on": step.depends_on});
            let holds = match condition_holds(step, &render) {
                Ok(holds) => holds,
                Err(error) => {
                    entry["would"] = json!("fail");
                    entry["render_error"] = json!({"field": error.field, "message": error.message});
                    walked.push(entry);
                    states.insert(id, StepStatus::Failed);
                    continue;
                }
            };
            if step.condition.is_some() {
                entry["if"] = json!(holds);
            }
            if !holds {
                entry["would"] = json!("skip");
                walked.push(entry);
                states.insert(id, StepStatus::Skipped);
                continue;
            }
            let mut status = StepStatus::Succeeded;
            let output = match &step.run {
                StepRun::Handler(handler) => {
                    match handler.preview(&step_ctx) {
                        Ok(rendered) => entry["rendered"] = rendered,
                        Err(error) => {
                            entry["render_error"] =
                                json!({"field": error.field, "message": error.message});
                            status = StepStatus::Failed;
                        }
                    }
                    entry["output_assumed"] = samples.get(&id).cloned().unwrap_or(Value::Null);
                    samples.get(&id).cloned().unwrap_or(Value::Null)
                }
                StepRun::Set(values) => match set_values(step, values, &render) {
                    Ok(values) => {
                        entry["output"] = values.clone();
                        values
                    }
                    Err(error) => {
                        entry["render_error"] =
                            json!({"field": error.field, "message": error.message});
                        status = StepStatus::Failed;
                        Value::Null
                    }
                },
                StepRun::Wait => Value::Null,
            };
            if let Some(delay) = step.delay_s {
                entry["delay_s"] = json!(delay);
            }
            match super::execute::wait_until(step, &render) {
                Ok(Some(due)) => entry["at"] = json!(due.to_rfc3339()),
                Ok(None) => {}
                Err(error) => {
                    entry["render_error"] = json!({"field": error.field, "message": error.message});
                    status = StepStatus::Failed;
                }
            }
            entry["would"] = json!(if status == StepStatus::Failed {
                "fail"
            } else {
                "run"
            });
            walked.push(entry);
            if status == StepStatus::Succeeded {
                outputs.insert(id.clone(), output);
            }
            states.insert(id, status);
        }
    }
    json!({"steps": walked, "on_failure_would_run": states.values().any(|s| *s == StepStatus::Failed)
        && spec.on_failure.is_some()})
}
