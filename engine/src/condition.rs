//! Conditions compiled for evaluation, and their semantics.
//!
//! The rules (the contract's, table-tested below): a path that meets an array holds when any
//! element holds; a missing field fails every operator except `not_exists`; numbers compare as
//! numbers (`100` equals `100.0`), a string is never a number and a boolean is never a number;
//! string comparison is exact and case-sensitive. Objects and arrays themselves only count for
//! `exists` / `not_exists`.

use std::sync::Arc;

use herald_common::condition::{Condition, Operator};
use serde_json::Value;

use super::json::Val;
use super::memory::{HeapBytes, slice_bytes};

/// Which part of the event a leaf reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Type,
    Source,
    Id,
    /// A path below `data` or `metadata`, by its id in the tenant's path table.
    Path(u32),
}

/// A literal string. Short ones (most of them) are stored inline, so a leaf is tested
/// without reading another allocation.
pub type Text = compact_str::CompactString;

/// A literal to compare with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(Text),
    Num(f64),
    Bool(bool),
    Null,
}

impl Scalar {
    fn from_json(value: &Value) -> Option<Self> {
        Some(match value {
            Value::String(s) => Self::Str(s.as_str().into()),
            Value::Number(n) => Self::Num(n.as_f64()?),
            Value::Bool(b) => Self::Bool(*b),
            Value::Null => Self::Null,
            _ => return None,
        })
    }

    fn equals(&self, value: &Val<'_>) -> bool {
        match (self, value) {
            (Self::Str(a), Val::Str(b)) => a.as_str() == &**b,
            (Self::Num(a), Val::Num(b)) => a == b,
            (Self::Bool(a), Val::Bool(b)) => a == b,
            (Self::Null, Val::Null) => true,
            _ => false,
        }
    }
}

/// The test a leaf applies to each value found at its field.
#[derive(Debug, Clone)]
pub enum Test {
    Equals(Scalar),
    NotEquals(Scalar),
    Contains(Text),
    StartsWith(Text),
    EndsWith(Text),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Box<[Scalar]>),
    NotIn(Box<[Scalar]>),
    Exists,
    NotExists,
    Matches(Arc<regex::Regex>),
}

impl Test {
    /// Whether this test holds for one scalar value (composites never hold).
    fn holds_for(&self, value: &Val<'_>) -> bool {
        if matches!(value, Val::Composite) {
            return false;
        }
        let number = || match value {
            Val::Num(n) => Some(*n),
            _ => None,
        };
        let text = || match value {
            Val::Str(s) => Some(&**s),
            _ => None,
        };
        match self {
            Self::Equals(s) => s.equals(value),
            Self::NotEquals(s) => !s.equals(value),
            Self::Contains(needle) => text().is_some_and(|t| t.contains(&**needle)),
            Self::StartsWith(prefix) => text().is_some_and(|t| t.starts_with(&**prefix)),
            Self::EndsWith(suffix) => text().is_some_and(|t| t.ends_with(&**suffix)),
            Self::Gt(limit) => number().is_some_and(|n| n > *limit),
            Self::Gte(limit) => number().is_some_and(|n| n >= *limit),
            Self::Lt(limit) => number().is_some_and(|n| n < *limit),
            Self::Lte(limit) => number().is_some_and(|n| n <= *limit),
            Self::In(list) => list.iter().any(|s| s.equals(value)),
            Self::NotIn(list) => !list.iter().any(|s| s.equals(value)),
            Self::Matches(regex) => text().is_some_and(|t| regex.is_match(t)),
            Self::Exists | Self::NotExists => true,
        }
    }

    /// Whether the test holds for the values at a field, given `any`, which calls its visitor
    /// on each value (none when the field is missing) until the visitor returns true.
    pub fn holds_with(&self, any: impl FnOnce(&mut dyn FnMut(&Val<'_>) -> bool) -> bool) -> bool {
        match self {
            Self::Exists => any(&mut |_| true),
            Self::NotExists => !any(&mut |_| true),
            _ => any(&mut |v| self.holds_for(v)),
        }
    }

    /// Whether the test holds for these values.
    pub fn holds<'v, 'a: 'v>(&self, mut values: impl Iterator<Item = &'v Val<'a>>) -> bool {
        self.holds_with(|visit| values.any(visit))
    }
}

/// A compiled condition tree.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// `slot` numbers the leaf within its tenant; identical leaves may share a slot, so one
    /// event evaluates each slot at most once.
    Leaf {
        field: Field,
        test: Test,
        slot: u32,
    },
    Any(Box<[Compiled]>),
    All(Box<[Compiled]>),
    Not(Box<Compiled>),
}

impl Test {
    /// Asks for the allocation outside the leaf that testing reads first, if any: a list, or
    /// a text too long to be stored inline.
    pub fn prefetch_outside(&self) {
        let text = match self {
            Self::Equals(Scalar::Str(t)) | Self::NotEquals(Scalar::Str(t)) => t,
            Self::Contains(t) | Self::StartsWith(t) | Self::EndsWith(t) => t,
            Self::In(list) | Self::NotIn(list) => return super::prefetch::slice(list),
            _ => return,
        };
        if text.is_heap_allocated() {
            super::prefetch::slice(text.as_bytes());
        }
    }
}

fn text_heap_bytes(text: &Text) -> usize {
    if text.is_heap_allocated() {
        text.len()
    } else {
        0
    }
}

impl HeapBytes for Scalar {
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Str(text) => text_heap_bytes(text),
            _ => 0,
        }
    }
}

impl HeapBytes for Test {
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Equals(s) | Self::NotEquals(s) => s.heap_bytes(),
            Self::Contains(t) | Self::StartsWith(t) | Self::EndsWith(t) => text_heap_bytes(t),
            Self::In(list) | Self::NotIn(list) => slice_bytes(list),
            // Compiled regexes are shared by the whole engine.
            _ => 0,
        }
    }
}

impl HeapBytes for Compiled {
    fn heap_bytes(&self) -> usize {
        match self {
            Self::Leaf { test, .. } => test.heap_bytes(),
            Self::Any(items) | Self::All(items) => slice_bytes(items),
            Self::Not(inner) => size_of::<Self>() + inner.heap_bytes(),
        }
    }
}

/// Where a leaf's values come from during evaluation.
pub trait Values {
    /// Calls `visit` on each value at `field` until it returns true; whether one did.
    fn any(&self, field: Field, visit: &mut dyn FnMut(&Val<'_>) -> bool) -> bool;
}

impl Compiled {
    /// Compiles `condition`, naming paths through `path_id` (which registers new ones), leaves
    /// through `slot`, and regexes through `regex` (which may share compiled ones).
    pub fn compile<'c>(
        condition: &'c Condition,
        path_id: &mut impl FnMut(&str) -> u32,
        slot: &mut impl FnMut(&'c Condition) -> u32,
        regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
    ) -> Self {
        match condition {
            Condition::Leaf { path, op, value } => {
                let (field, test) = compile_leaf(path, *op, value, path_id, regex);
                Self::Leaf {
                    field,
                    test,
                    slot: slot(condition),
                }
            }
            Condition::Any(items) => Self::Any(
                items
                    .iter()
                    .map(|c| Self::compile(c, path_id, slot, regex))
                    .collect(),
            ),
            Condition::All(items) => Self::All(
                items
                    .iter()
                    .map(|c| Self::compile(c, path_id, slot, regex))
                    .collect(),
            ),
            Condition::Not(inner) => {
                Self::Not(Box::new(Self::compile(inner, path_id, slot, regex)))
            }
        }
    }

    /// Whether the condition holds. `memo` (indexed by slot: 0 unknown, 1 false, 2 true)
    /// remembers leaves already evaluated for this event; a slot past its end is evaluated.
    pub fn holds(&self, values: &impl Values, memo: &mut [u8]) -> bool {
        match self {
            Self::Leaf { field, test, slot } => memoized(memo, *slot, || {
                test.holds_with(|visit| values.any(*field, visit))
            }),
            Self::Any(items) => items.iter().any(|c| c.holds(values, memo)),
            Self::All(items) => items.iter().all(|c| c.holds(values, memo)),
            Self::Not(inner) => !inner.holds(values, memo),
        }
    }
}

/// A leaf's result for this event: remembered in `memo[slot]` (0 not yet evaluated, 1 false,
/// 2 true) so that a leaf shared by many actions is evaluated once; a slot past the memo's end
/// is evaluated every time.
pub fn memoized(memo: &mut [u8], slot: u32, evaluate: impl FnOnce() -> bool) -> bool {
    match memo.get(slot as usize) {
        Some(1) => false,
        Some(2) => true,
        _ => {
            let held = evaluate();
            if let Some(cell) = memo.get_mut(slot as usize) {
                *cell = 1 + u8::from(held);
            }
            held
        }
    }
}

/// The field a leaf reads and the test it applies, naming paths through `path_id`.
pub fn compile_leaf(
    path: &str,
    op: Operator,
    value: &Value,
    path_id: &mut impl FnMut(&str) -> u32,
    regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
) -> (Field, Test) {
    let field = match path {
        "type" => Field::Type,
        "source" => Field::Source,
        "id" => Field::Id,
        other => Field::Path(path_id(other)),
    };
    (field, compile_test(op, value, regex))
}

/// Validated values (see `herald_common::condition`) always fit their operator; anything else
/// would have been rejected when the action was saved, so a misfit never matches.
fn compile_test(
    op: Operator,
    value: &Value,
    regex: &mut impl FnMut(&str) -> Arc<regex::Regex>,
) -> Test {
    let text = || -> Text { value.as_str().unwrap_or_default().into() };
    let number = || value.as_f64().unwrap_or(f64::NAN);
    let scalar = || Scalar::from_json(value).unwrap_or(Scalar::Null);
    let list = || -> Box<[Scalar]> {
        value
            .as_array()
            .map(|items| items.iter().filter_map(Scalar::from_json).collect())
            .unwrap_or_default()
    };
    match op {
        Operator::Equals => Test::Equals(scalar()),
        Operator::NotEquals => Test::NotEquals(scalar()),
        Operator::Contains => Test::Contains(text()),
        Operator::StartsWith => Test::StartsWith(text()),
        Operator::EndsWith => Test::EndsWith(text()),
        Operator::Gt => Test::Gt(number()),
        Operator::Gte => Test::Gte(number()),
        Operator::Lt => Test::Lt(number()),
        Operator::Lte => Test::Lte(number()),
        Operator::In => Test::In(list()),
        Operator::NotIn => Test::NotIn(list()),
        Operator::Exists => Test::Exists,
        Operator::NotExists => Test::NotExists,
        Operator::Matches => Test::Matches(regex(value.as_str().unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn test_of(op: &str, value: Value) -> Test {
        let condition: Condition =
            serde_json::from_value(serde_json::json!({"path": "data.x", "op": op, "value": value}))
                .or_else(|_| {
                    serde_json::from_value(serde_json::json!({"path": "data.x", "op": op}))
                })
                .unwrap();
        let compiled = Compiled::compile(&condition, &mut |_| 0, &mut |_| 0, &mut |source| {
            Arc::new(regex::Regex::new(source).unwrap())
        });
        match compiled {
            Compiled::Leaf { test, .. } => test,
            _ => unreachable!(),
        }
    }

    fn s(text: &str) -> Val<'static> {
        Val::Str(Cow::Owned(text.into()))
    }

    #[test]
    fn operators_on_present_missing_and_array_values() {
        use serde_json::json;
        let n = Val::Num;
        // (operator, value, the values found at the path, expected)
        let cases: Vec<(&str, Value, Vec<Val<'static>>, bool)> = vec![
            ("equals", json!(100), vec![n(100.0)], true),
            ("equals", json!(100.0), vec![n(100.0)], true),
            ("equals", json!(100), vec![s("100")], false),
            ("equals", json!("100"), vec![n(100.0)], false),
            ("equals", json!(1), vec![Val::Bool(true)], false),
            ("equals", json!(true), vec![Val::Bool(true)], true),
            ("equals", json!(null), vec![Val::Null], true),
            ("equals", json!("USD"), vec![s("usd")], false),
            ("equals", json!("a"), vec![], false),
            (
                "equals",
                json!("a"),
                vec![Val::Composite, s("b"), s("a")],
                true,
            ),
            ("not_equals", json!("a"), vec![s("b")], true),
            ("not_equals", json!("a"), vec![s("a")], false),
            ("not_equals", json!("a"), vec![], false),
            ("not_equals", json!("a"), vec![Val::Composite], false),
            ("not_equals", json!(5), vec![s("5")], true),
            ("contains", json!("ell"), vec![s("hello")], true),
            ("contains", json!("ell"), vec![n(1.0)], false),
            (
                "contains",
                json!("x"),
                vec![Val::Composite, s("a"), s("xy")],
                true,
            ),
            ("starts_with", json!("he"), vec![s("hello")], true),
            ("starts_with", json!("He"), vec![s("hello")], false),
            ("ends_with", json!("lo"), vec![s("hello")], true),
            ("ends_with", json!("lo"), vec![], false),
            ("gt", json!(100), vec![n(100.5)], true),
            ("gt", json!(100), vec![n(100.0)], false),
            ("gt", json!(100), vec![s("200")], false),
            ("gt", json!(0), vec![Val::Bool(true)], false),
            ("gte", json!(100), vec![n(100.0)], true),
            ("lt", json!(0), vec![n(-1.0)], true),
            ("lte", json!(1.5), vec![n(1.5)], true),
            ("lte", json!(1.5), vec![], false),
            ("gt", json!(10), vec![n(1.0), n(20.0)], true),
            ("in", json!(["usd", "eur"]), vec![s("eur")], true),
            ("in", json!(["usd", 5]), vec![n(5.0)], true),
            ("in", json!(["usd"]), vec![s("gbp")], false),
            ("in", json!(["usd"]), vec![], false),
            ("not_in", json!(["usd"]), vec![s("gbp")], true),
            ("not_in", json!(["usd"]), vec![s("usd")], false),
            ("not_in", json!(["usd"]), vec![], false),
            ("exists", Value::Null, vec![s("x")], true),
            ("exists", Value::Null, vec![Val::Null], true),
            ("exists", Value::Null, vec![Val::Composite], true),
            ("exists", Value::Null, vec![], false),
            ("not_exists", Value::Null, vec![], true),
            ("not_exists", Value::Null, vec![s("x")], false),
            ("matches", json!("^ord-[0-9]+$"), vec![s("ord-42")], true),
            ("matches", json!("^ord-[0-9]+$"), vec![s("ORD-42")], false),
            ("matches", json!("1"), vec![n(1.0)], false),
        ];
        for (op, value, found, expected) in cases {
            let test = test_of(op, value.clone());
            assert_eq!(
                test.holds(found.iter()),
                expected,
                "{op} {value} on {found:?}"
            );
        }
    }
}
