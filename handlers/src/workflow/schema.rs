//! The workflow handler's JSON Schema.

use serde_json::{Value, json};

use super::MAX_STEPS;

pub fn schema() -> Value {
    let handler = json!({"$ref": "#/components/schemas/Handler",
        "description": "A handler of any type but workflow."});
    json!({
        "type": "object",
        "title": "Workflow",
        "description": "Steps that run in the order their dependencies give; a step's templates \
            read the outputs of the steps it depends on as steps.ID.output.",
        "required": ["type", "steps"],
        "additionalProperties": false,
        "x-herald-summary": [],
        "properties": {
            "type": {"const": "workflow"},
            "steps": {
                "type": "array", "minItems": 1, "maxItems": MAX_STEPS, "title": "Steps",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": false,
                    "properties": {
                        "id": {"type": "string", "pattern": "^[a-z_][a-z0-9_]{0,63}$"},
                        "depends_on": {"type": "array", "items": {"type": "string"}},
                        "handler": handler,
                        "set": {"type": "object", "description":
                            "Named values from templates: the step's output."},
                        "if": {"type": "string", "description":
                            "A template: the step runs only when it renders a true value."},
                        "retry": {"type": "object", "description":
                            "As an action's retry; one attempt when not given."},
                        "timeout_ms": {"type": "integer", "minimum": 1},
                        "delay_s": {"type": "integer", "minimum": 0, "description":
                            "Waits this long, once the step may start, before its attempt."},
                        "at": {"type": "string", "description":
                            "A template giving an RFC 3339 time: the step waits until then."}
                    }
                }
            },
            "on_failure": {"$ref": "#/components/schemas/Handler", "description":
                "Runs once when a step fails for good; its templates read steps and error."}
        }
    })
}
