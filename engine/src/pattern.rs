//! Event-type patterns, with AMQP topic rules: segments separated by `.`, `*` matches exactly
//! one segment, `#` matches zero or more. A pattern that is only `*` or only `#` matches every
//! type (the contract's rule, wider than AMQP's for a lone `*`).

/// A compiled event-type pattern. Only its text is kept (segments are split when a wildcard
/// pattern is tried), since most patterns are exact and live as hash keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern {
    source: Box<str>,
}

/// Where the index files a pattern, so that most events look at few patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternKind<'a> {
    /// No wildcard: found by a hash lookup of the whole type.
    Exact(&'a str),
    /// Matches every type.
    Everything,
    /// Starts with a literal segment: only types with that first segment can match.
    FirstSegment(&'a str),
    /// Starts with a wildcard: must be tried against every type.
    Other,
}

fn is_wildcard(segment: &str) -> bool {
    segment == "*" || segment == "#"
}

impl TypePattern {
    /// Wraps a pattern already checked by `herald_common::action::validate_pattern`.
    pub fn new(pattern: &str) -> Self {
        Self {
            source: pattern.into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn kind(&self) -> PatternKind<'_> {
        kind_of(&self.source)
    }

    /// Whether `event_type` matches.
    pub fn matches(&self, event_type: &str) -> bool {
        matches_pattern(&self.source, event_type)
    }
}

/// Where a pattern is filed in the index.
pub fn kind_of(pattern: &str) -> PatternKind<'_> {
    if pattern == "*" || pattern == "#" {
        return PatternKind::Everything;
    }
    if !pattern.split('.').any(is_wildcard) {
        return PatternKind::Exact(pattern);
    }
    let first = first_segment(pattern);
    if is_wildcard(first) {
        PatternKind::Other
    } else {
        PatternKind::FirstSegment(first)
    }
}

/// Whether `event_type` matches `pattern`.
pub fn matches_pattern(pattern: &str, event_type: &str) -> bool {
    match kind_of(pattern) {
        PatternKind::Everything => true,
        PatternKind::Exact(exact) => exact == event_type,
        _ => {
            let mut wanted: smallvec::SmallVec<[&str; 8]> = smallvec::SmallVec::new();
            wanted.extend(pattern.split('.'));
            let mut segments: smallvec::SmallVec<[&str; 8]> = smallvec::SmallVec::new();
            segments.extend(event_type.split('.'));
            matches_from(&wanted, &segments)
        }
    }
}

/// Matches pattern segments against type segments. `#` tries every split; patterns are short,
/// and consecutive `#`s are rare, so the backtracking stays small.
fn matches_from(pattern: &[&str], segments: &[&str]) -> bool {
    match pattern.split_first() {
        None => segments.is_empty(),
        Some((&"#", rest)) => {
            if rest.is_empty() {
                return true;
            }
            (0..=segments.len()).any(|skip| matches_from(rest, &segments[skip..]))
        }
        Some((&"*", rest)) => !segments.is_empty() && matches_from(rest, &segments[1..]),
        Some((literal, rest)) => {
            segments.first() == Some(literal) && matches_from(rest, &segments[1..])
        }
    }
}

/// The first segment of an event type.
pub fn first_segment(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("user.created", "user.created", true),
            ("user.created", "user.deleted", false),
            ("user.created", "user.created.v2", false),
            ("user.*", "user.created", true),
            ("user.*", "user", false),
            ("user.*", "user.created.v2", false),
            ("user.#", "user", true),
            ("user.#", "user.created", true),
            ("user.#", "user.created.v2", true),
            ("user.#", "users.created", false),
            ("#.created", "user.created", true),
            ("#.created", "created", true),
            ("#.created", "a.b.created", true),
            ("#.created", "user.created.v2", false),
            ("*.created", "user.created", true),
            ("*.created", "created", false),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a.b.c.d", true),
            ("#.#", "x", true),
            ("*", "user.created", true),
            ("*", "user", true),
            ("#", "a.b.c", true),
            ("a.b", "a", false),
        ];
        for (pattern, event_type, expected) in cases {
            assert_eq!(
                TypePattern::new(pattern).matches(event_type),
                *expected,
                "{pattern} vs {event_type}"
            );
        }
    }

    #[test]
    fn kinds_decide_where_the_index_files_a_pattern() {
        let cases = [
            ("user.created", PatternKind::Exact("user.created")),
            ("*", PatternKind::Everything),
            ("#", PatternKind::Everything),
            ("user.*", PatternKind::FirstSegment("user")),
            ("user.#.x", PatternKind::FirstSegment("user")),
            ("*.created", PatternKind::Other),
            ("#.created", PatternKind::Other),
        ];
        for (pattern, kind) in cases {
            assert_eq!(TypePattern::new(pattern).kind(), kind, "{pattern}");
        }
    }
}
