//! The condition language of actions: leaf tests on event fields and `any`/`all`/`not` groups.
//!
//! This module owns the shape (parsing, validation, the JSON form); evaluation is the matcher's.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::action::ActionError;
use crate::json_tree::{At, Json, Object};

/// A comparison operator of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    NotEquals,
    Contains,
    StartsWith,
    EndsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Exists,
    NotExists,
    Matches,
}

impl Operator {
    pub const ALL: [Operator; 14] = [
        Self::Equals,
        Self::NotEquals,
        Self::Contains,
        Self::StartsWith,
        Self::EndsWith,
        Self::Gt,
        Self::Gte,
        Self::Lt,
        Self::Lte,
        Self::In,
        Self::NotIn,
        Self::Exists,
        Self::NotExists,
        Self::Matches,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "not_equals",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Exists => "exists",
            Self::NotExists => "not_exists",
            Self::Matches => "matches",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

/// Longest regex source accepted in a `matches` condition.
pub const MAX_REGEX_LEN: usize = 512;
/// Compiled-size ceiling for a regex: rejects patterns that would be costly to evaluate.
pub const MAX_REGEX_COMPILED_BYTES: usize = 256 * 1024;
/// Deepest nesting of groups.
pub const MAX_DEPTH: usize = 8;
/// Most leaf conditions in one action.
pub const MAX_LEAVES: usize = 64;

/// One node of a condition tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Leaf {
        path: String,
        op: Operator,
        value: Value,
    },
    Any(Vec<Condition>),
    All(Vec<Condition>),
    Not(Box<Condition>),
}

impl Condition {
    pub fn to_json(&self) -> Value {
        match self {
            Self::Leaf { path, op, value } => match op {
                Operator::Exists | Operator::NotExists => json!({"path": path, "op": op.as_str()}),
                _ => json!({"path": path, "op": op.as_str(), "value": value}),
            },
            Self::Any(items) => json!({"any": items.iter().map(Self::to_json).collect::<Vec<_>>()}),
            Self::All(items) => json!({"all": items.iter().map(Self::to_json).collect::<Vec<_>>()}),
            Self::Not(inner) => json!({"not": inner.to_json()}),
        }
    }

    /// Counts `matches` leaves, for budgets.
    pub fn regexes(&self) -> usize {
        match self {
            Self::Leaf { op, .. } => usize::from(*op == Operator::Matches),
            Self::Any(items) | Self::All(items) => items.iter().map(Self::regexes).sum(),
            Self::Not(inner) => inner.regexes(),
        }
    }

    /// Counts leaves, for budgets.
    pub fn leaves(&self) -> usize {
        match self {
            Self::Leaf { .. } => 1,
            Self::Any(items) | Self::All(items) => items.iter().map(Self::leaves).sum(),
            Self::Not(inner) => inner.leaves(),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Json::deserialize(deserializer)?;
        parse_condition(&json, At::Root("condition"), 0).map_err(serde::de::Error::custom)
    }
}

/// Parses the `conditions` list of an action.
pub fn parse_conditions(value: &Json<'_>) -> Result<Vec<Condition>, ActionError> {
    let Json::Array(items) = value else {
        return Err(ActionError::new(
            "conditions",
            "must be a list of conditions",
        ));
    };
    let root = At::Root("conditions");
    let parsed = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_condition(item, root.index(i), 1))
        .collect::<Result<Vec<_>, _>>()?;
    let leaves: usize = parsed.iter().map(Condition::leaves).sum();
    if leaves > MAX_LEAVES {
        return Err(ActionError::new(
            "conditions",
            format!("has {leaves} conditions; at most {MAX_LEAVES} are allowed"),
        ));
    }
    Ok(parsed)
}

fn parse_condition(value: &Json<'_>, at: At<'_>, depth: usize) -> Result<Condition, ActionError> {
    if depth > MAX_DEPTH {
        return Err(ActionError::new(
            at,
            format!("nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Json::Object(map) = value else {
        return Err(ActionError::new(at, "must be an object"));
    };
    let group = |key: &str| -> Result<Vec<Condition>, ActionError> {
        expect_only(map, &[key], at)?;
        let group_at = at.key(key);
        match map.get(key) {
            Some(Json::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_condition(v, group_at.index(i), depth + 1))
                .collect(),
            _ => Err(ActionError::new(
                group_at,
                "must be a non-empty list of conditions",
            )),
        }
    };
    if map.contains_key("any") {
        return group("any").map(Condition::Any);
    }
    if map.contains_key("all") {
        return group("all").map(Condition::All);
    }
    if let Some(inner) = map.get("not") {
        expect_only(map, &["not"], at)?;
        let inner = parse_condition(inner, at.key("not"), depth + 1)?;
        return Ok(Condition::Not(Box::new(inner)));
    }
    expect_only(map, &["path", "op", "value"], at)?;
    let path = match map.get("path") {
        Some(Json::Str(p)) => {
            validate_path(p).map_err(|m| ActionError::new(at.key("path"), m))?;
            p.as_ref().to_owned()
        }
        _ => {
            return Err(ActionError::new(
                at.key("path"),
                "is required (a dotted path)",
            ));
        }
    };
    let op = match map.get("op") {
        Some(Json::Str(text)) => Operator::parse(text).ok_or_else(|| {
            let known: Vec<_> = Operator::ALL.iter().map(|o| o.as_str()).collect();
            ActionError::new(
                at.key("op"),
                format!("unknown operator {text:?}; known: {}", known.join(", ")),
            )
        })?,
        _ => return Err(ActionError::new(at.key("op"), "is required")),
    };
    let value = map.get("value");
    validate_value(op, value.unwrap_or(&Json::Null), value.is_some())
        .map_err(|m| ActionError::new(at.key("value"), m))?;
    let value = value.map_or(Value::Null, Json::to_value);
    Ok(Condition::Leaf { path, op, value })
}

fn expect_only(map: &Object<'_>, keys: &[&str], at: At<'_>) -> Result<(), ActionError> {
    match map.keys().find(|k| !keys.contains(k)) {
        Some(extra) => Err(ActionError::new(
            at.key(extra),
            format!("is not allowed here (expected only {})", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

/// A path starts at `data`, `metadata`, `type` or `source`; segments are non-empty.
pub fn validate_path(path: &str) -> Result<(), String> {
    let mut segments = path.split('.');
    let root = segments.next().unwrap_or_default();
    match root {
        "type" | "source" | "id" => {
            if segments.next().is_some() {
                return Err(format!("`{root}` has no fields below it"));
            }
        }
        "data" | "metadata" => {}
        _ => return Err("must start with data, metadata, type, source or id".into()),
    }
    if path.split('.').any(str::is_empty) || path.len() > 512 {
        return Err("must be dot-separated non-empty segments, at most 512 bytes".into());
    }
    Ok(())
}

fn validate_value(op: Operator, value: &Json<'_>, present: bool) -> Result<(), String> {
    match op {
        Operator::Exists | Operator::NotExists => {
            if present && !value.is_null() {
                return Err(format!("`{}` takes no value", op.as_str()));
            }
        }
        Operator::Equals | Operator::NotEquals => {
            if !(value.is_scalar() || value.is_null()) || !present {
                return Err(format!(
                    "`{}` needs a string, number, boolean or null",
                    op.as_str()
                ));
            }
        }
        Operator::Contains | Operator::StartsWith | Operator::EndsWith => {
            if !value.is_string() {
                return Err(format!("`{}` needs a string", op.as_str()));
            }
        }
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte => {
            if !value.is_number() {
                return Err(format!("`{}` needs a number", op.as_str()));
            }
        }
        Operator::In | Operator::NotIn => match value {
            Json::Array(items) if !items.is_empty() && items.len() <= 1000 => {
                if !items.iter().all(|v| v.is_scalar() || v.is_null()) {
                    return Err(format!("`{}` needs a list of scalars", op.as_str()));
                }
            }
            _ => {
                return Err(format!(
                    "`{}` needs a list of 1 to 1000 values",
                    op.as_str()
                ));
            }
        },
        Operator::Matches => {
            let Json::Str(source) = value else {
                return Err("`matches` needs a regular expression string".into());
            };
            if source.len() > MAX_REGEX_LEN {
                return Err(format!("regex is longer than {MAX_REGEX_LEN} bytes"));
            }
            regex::RegexBuilder::new(source.as_ref())
                .size_limit(MAX_REGEX_COMPILED_BYTES)
                .build()
                .map_err(|e| format!("invalid or too costly regex: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &Value) -> Result<Vec<Condition>, ActionError> {
        parse_conditions(&Json::from_value(value))
    }

    #[test]
    fn groups_and_leaves_round_trip() {
        let input = json!([
            {"path": "data.amount", "op": "gt", "value": 100},
            {"any": [{"path": "data.currency", "op": "in", "value": ["usd", "eur"]},
                     {"not": {"path": "metadata.region", "op": "exists"}}]},
            {"all": [{"path": "type", "op": "matches", "value": "^user\\."}]}
        ]);
        let parsed = parse(&input).unwrap();
        let back = Value::Array(parsed.iter().map(Condition::to_json).collect());
        assert_eq!(back, input);
        let again: Vec<Condition> = serde_json::from_value(back).unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn every_operator_checks_its_value_shape() {
        let cases = [
            ("equals", json!("x"), true),
            ("equals", json!([1]), false),
            ("not_equals", json!(null), true),
            ("contains", json!(1), false),
            ("starts_with", json!("a"), true),
            ("ends_with", json!({}), false),
            ("gt", json!("5"), false),
            ("gte", json!(5.5), true),
            ("lt", json!(true), false),
            ("lte", json!(-1), true),
            ("in", json!([]), false),
            ("in", json!(["a", 1, true]), true),
            ("not_in", json!("a"), false),
            ("exists", json!(null), true),
            ("not_exists", json!(1), false),
            ("matches", json!("(unclosed"), false),
            ("matches", json!("^ok$"), true),
            ("matches", json!(".{1000}{1000}"), false),
        ];
        for (op, value, ok) in cases {
            let cond = json!([{"path": "data.x", "op": op, "value": value}]);
            assert_eq!(parse(&cond).is_ok(), ok, "{op} {value}");
        }
    }

    #[test]
    fn errors_point_at_the_node() {
        let cases = [
            (
                json!([{"path": "data.x", "op": "like", "value": 1}]),
                "conditions[0].op",
            ),
            (
                json!([{"path": "body.x", "op": "exists"}]),
                "conditions[0].path",
            ),
            (
                json!([{"path": "data..x", "op": "exists"}]),
                "conditions[0].path",
            ),
            (json!([{"any": []}]), "conditions[0].any"),
            (
                json!([{"any": [{"path": "data.x", "op": "gt", "value": "1"}]}]),
                "conditions[0].any[0].value",
            ),
            (
                json!([{"not": {"path": "data.x", "op": "eq"}}]),
                "conditions[0].not.op",
            ),
            (
                json!([{"path": "data.x", "op": "exists", "extra": 1}]),
                "conditions[0].extra",
            ),
            (json!({"path": "data.x"}), "conditions"),
        ];
        for (input, field) in cases {
            let err = parse(&input).unwrap_err();
            assert_eq!(err.field, field, "{input}: {err}");
        }
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut deep = json!({"path": "data.x", "op": "exists"});
        for _ in 0..10 {
            deep = json!({"not": deep});
        }
        assert!(parse(&json!([deep])).is_err());
        let many: Vec<_> = (0..65)
            .map(|_| json!({"path": "data.x", "op": "exists"}))
            .collect();
        assert!(parse(&Value::Array(many)).is_err());
    }
}
