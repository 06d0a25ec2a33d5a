//! Why an action would or would not match an event: each pattern, the source filter and every
//! condition with what it held and the values it saw. Behind `POST /v1/actions/{id}/test`.

use herald_common::action::ActionMatching;
use herald_common::condition::Condition;
use herald_common::ids::ActionId;

use serde_json::{Value, json};

use super::MatchSpec;
use super::action::{CompiledAction, EventValues, PathTable};
use super::condition::{Compiled, Values};
use super::event::EventRef;
use super::json::{Found, Malformed, Val};
use super::pattern::matches_pattern;

/// Explains `spec` against `event`. `live` is false for a disabled or deleted action, which
/// never matches whatever its patterns and conditions say.
pub fn explain(
    spec: &ActionMatching,
    live: bool,
    event: &EventRef<'_>,
) -> Result<Value, Malformed> {
    let mut paths = PathTable::default();
    let matching = MatchSpec::from(spec);
    let compiled = CompiledAction::compile(
        ActionId::new(),
        &matching,
        &mut paths,
        &mut |_| u32::MAX,
        &mut super::compile_regex,
        &mut super::action::own_patterns,
    );
    let mut found = Found::default();
    event.extract(&paths.data, &paths.metadata, &mut found)?;
    let values = EventValues {
        event,
        found: &found,
    };

    let patterns: Vec<Value> = spec
        .event_types
        .iter()
        .map(|p| json!({"pattern": p, "held": matches_pattern(p, event.event_type)}))
        .collect();
    let type_held = patterns.iter().any(|p| p["held"] == true);
    let source = spec.source.as_ref().map(|expected| {
        json!({"expected": expected, "actual": event.source, "held": event.source == Some(expected)})
    });
    let source_held = source.as_ref().is_none_or(|s| s["held"] == true);
    // The compiled action checks the source as its first leaf; the spec's conditions follow.
    let written = &compiled.conditions[usize::from(spec.source.is_some())..];
    let conditions: Vec<Value> = spec
        .conditions
        .iter()
        .zip(written.iter())
        .map(|(condition, compiled)| node(condition, compiled, &values))
        .collect();
    let conditions_held = conditions.iter().all(|c| c["held"] == true);
    Ok(json!({
        "matched": live && type_held && source_held && conditions_held,
        "live": live,
        "event_type": {"actual": event.event_type, "held": type_held, "patterns": patterns},
        "source": source,
        "conditions": conditions,
    }))
}

fn node(condition: &Condition, compiled: &Compiled, values: &EventValues<'_, '_>) -> Value {
    match (condition, compiled) {
        (Condition::Leaf { path, op, value }, Compiled::Leaf { field, .. }) => {
            let mut seen = Vec::new();
            values.any(*field, &mut |v| {
                seen.push(to_json(v));
                false
            });
            let mut out = json!({
                "path": path,
                "op": op.as_str(),
                "held": compiled.holds(values, &mut []),
                "actual": seen,
            });
            if !value.is_null() {
                out["value"] = value.clone();
            }
            out
        }
        (Condition::Any(items), Compiled::Any(compiled_items)) => json!({
            "any": items.iter().zip(compiled_items.iter()).map(|(c, k)| node(c, k, values)).collect::<Vec<_>>(),
            "held": compiled.holds(values, &mut []),
        }),
        (Condition::All(items), Compiled::All(compiled_items)) => json!({
            "all": items.iter().zip(compiled_items.iter()).map(|(c, k)| node(c, k, values)).collect::<Vec<_>>(),
            "held": compiled.holds(values, &mut []),
        }),
        (Condition::Not(inner), Compiled::Not(compiled_inner)) => json!({
            "not": node(inner, compiled_inner, values),
            "held": compiled.holds(values, &mut []),
        }),
        // Compiled from this very condition, so the shapes always agree.
        _ => json!({"held": compiled.holds(values, &mut [])}),
    }
}

fn to_json(value: &Val<'_>) -> Value {
    match value {
        Val::Str(s) => Value::String(s.to_string()),
        Val::Num(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Val::Bool(b) => Value::Bool(*b),
        Val::Null => Value::Null,
        Val::Composite => Value::String("<object or array>".into()),
    }
}
