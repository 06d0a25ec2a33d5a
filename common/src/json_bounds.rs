//! What JSON Herald can store and read back, checked at the door in one pass over the text.
//!
//! Valid JSON that Herald cannot keep: nesting deeper than PostgreSQL's parser or Herald's own
//! readers go (PostgreSQL refused 100,000 levels with "stack depth limit exceeded", and
//! `serde_json` stops at 128, so deep `data` was stored but read back as `null`); numbers past
//! a 64-bit float's range (`1e400`, stored, then unreadable); and `\uD800`-style escapes of a
//! lone UTF-16 surrogate, which name no character. Parsers skip over all three when they keep
//! a value as raw text, as ingest does with `data`, so they are checked here instead, and
//! refused with the path to the value that breaks the bound.

use std::fmt::Write;

/// The deepest nesting any JSON body may have, whatever its route: `serde_json`'s own
/// recursion limit, so anything Herald parses fully fits.
pub const BODY_MAX_DEPTH: usize = 128;

/// The highest `ingest.max_json_depth` a configuration may set: a stored value is read back
/// inside an envelope (a webhook's body, an API answer), which must stay within
/// [`BODY_MAX_DEPTH`].
pub const MAX_CONFIGURABLE_DEPTH: usize = 100;

/// Why a JSON text cannot be stored. `path` leads from the checked value to the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRefusal {
    pub kind: RefusalKind,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalKind {
    /// More than `limit` arrays or objects inside one another.
    TooDeep { limit: usize },
    /// A number whose magnitude a 64-bit float cannot hold (the text, shortened).
    NumberOutOfRange { number: String },
    /// A `\uXXXX` escape of a UTF-16 surrogate without its other half.
    LoneSurrogate { escape: String },
}

impl JsonRefusal {
    /// The stable code for API errors and dead letters.
    pub fn code(&self) -> &'static str {
        match self.kind {
            RefusalKind::TooDeep { .. } => "json_too_deep",
            RefusalKind::NumberOutOfRange { .. } => "number_out_of_range",
            RefusalKind::LoneSurrogate { .. } => "lone_surrogate",
        }
    }

    /// The refusal as a message naming where it is: `root` names the checked value (`data`,
    /// `payload`, or empty for a whole body).
    pub fn message(&self, root: &str) -> String {
        let at = match (root.is_empty(), self.path.is_empty()) {
            (true, true) => "the body".to_owned(),
            (true, false) => format!("`{}`", self.path.trim_start_matches('.')),
            (false, _) => format!("`{root}{}`", self.path),
        };
        match &self.kind {
            RefusalKind::TooDeep { limit } => {
                format!("{at} is nested deeper than {limit} levels of arrays and objects")
            }
            RefusalKind::NumberOutOfRange { number } => format!(
                "{at} holds the number {number}, beyond the range of a 64-bit float \
                 (about ±1.8e308)"
            ),
            RefusalKind::LoneSurrogate { escape } => format!(
                "{at} holds the escape {escape}, half of a UTF-16 surrogate pair without the \
                 other half (no character)"
            ),
        }
    }
}

/// Checks `json` (assumed to be JSON; anything else passes, for its parser to report) against
/// `max_depth` levels of nesting, numbers within `f64`, and whole surrogate pairs.
pub fn check(json: &[u8], max_depth: usize) -> Result<(), JsonRefusal> {
    let refuse = |kind: RefusalKind, offset: usize| JsonRefusal {
        kind,
        path: path_at(json, offset),
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i = skip_string(json, i + 1)
                    .map_err(|(escape, at)| refuse(RefusalKind::LoneSurrogate { escape }, at))?;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(refuse(RefusalKind::TooDeep { limit: max_depth }, i));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let end = number_end(json, i);
                let token = &json[i..end];
                if overflows_f64(token) {
                    let number = shortened(token);
                    return Err(refuse(RefusalKind::NumberOutOfRange { number }, i));
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index just past the string whose contents start at `i`, or the lone surrogate's escape
/// and where it starts.
fn skip_string(json: &[u8], mut i: usize) -> Result<usize, (String, usize)> {
    while i < json.len() {
        // Plain text runs to the next quote or escape.
        match memchr::memchr2(b'"', b'\\', &json[i..]) {
            Some(skip) => i += skip,
            None => return Ok(json.len()),
        }
        match json[i] {
            b'"' => return Ok(i + 1),
            b'\\' if json.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(json, i + 2) else {
                    i += 2;
                    continue;
                };
                let escape = || String::from_utf8_lossy(&json[i..i + 6]).into_owned();
                match unit {
                    0xD800..=0xDBFF => {
                        let low = (json.get(i + 6) == Some(&b'\\')
                            && json.get(i + 7) == Some(&b'u'))
                        .then(|| hex4(json, i + 8))
                        .flatten();
                        if !low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                            return Err((escape(), i));
                        }
                        i += 12;
                    }
                    0xDC00..=0xDFFF => return Err((escape(), i)),
                    _ => i += 6,
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(json.len())
}

fn hex4(json: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

fn number_end(json: &[u8], mut i: usize) -> usize {
    while i < json.len() && matches!(json[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
        i += 1;
    }
    i
}

/// Whether a number's magnitude is past `f64::MAX` (small ones round to zero, as parsers do).
/// Without an exponent that takes more than 308 digits, so short plain numbers, nearly all of
/// them, are not parsed.
fn overflows_f64(token: &[u8]) -> bool {
    let plain = !token.iter().any(|b| matches!(b, b'e' | b'E'));
    if plain && token.len() <= 300 {
        return false;
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .is_some_and(f64::is_infinite)
}

fn shortened(token: &[u8]) -> String {
    let text = String::from_utf8_lossy(token);
    if text.len() <= 24 {
        return text.into_owned();
    }
    format!("{}…({} digits)", &text[..12], text.len())
}

/// Most path segments a refusal names; a deeper path ends in `…`.
const PATH_SEGMENTS: usize = 8;

/// The path (`.key` and `[index]` segments) of the innermost value open at `offset`, read
/// again from the start: refusals are rare, so the checking pass keeps no path.
fn path_at(json: &[u8], offset: usize) -> String {
    enum Frame {
        Array(usize),
        /// The key last read, as raw text, and whether the next string is a key.
        Object(Option<(usize, usize)>, bool),
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < offset.min(json.len()) {
        match json[i] {
            b'"' => {
                let end = skip_string(json, i + 1).unwrap_or_else(|(_, at)| at);
                if let Some(Frame::Object(key, expecting)) = frames.last_mut()
                    && *expecting
                {
                    *key = Some((i + 1, end.saturating_sub(1).max(i + 1)));
                    *expecting = false;
                }
                i = end;
                continue;
            }
            b'[' => frames.push(Frame::Array(0)),
            b'{' => frames.push(Frame::Object(None, true)),
            b']' | b'}' => {
                frames.pop();
            }
            b',' => match frames.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_, expecting)) => *expecting = true,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for (n, frame) in frames.iter().enumerate() {
        if n == PATH_SEGMENTS {
            path.push('…');
            break;
        }
        match frame {
            Frame::Array(index) => {
                let _ = write!(path, "[{index}]");
            }
            Frame::Object(Some((start, end)), _) => {
                path.push('.');
                path.push_str(&String::from_utf8_lossy(&json[*start..*end]));
            }
            Frame::Object(None, _) => {}
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_bounded_and_named() {
        assert!(check(b"1", 0).is_ok());
        assert!(check(b"{}", 1).is_ok());
        assert!(check(nested(64).as_bytes(), 64).is_ok());
        let refused = check(nested(65).as_bytes(), 64).unwrap_err();
        assert_eq!(refused.code(), "json_too_deep");
        assert_eq!(refused.kind, RefusalKind::TooDeep { limit: 64 });
        // Objects and arrays count alike; brackets inside strings do not count.
        let mixed = r#"{"a": [{"b": "[[[[[[[["}]}"#;
        assert!(check(mixed.as_bytes(), 3).is_ok());
        assert!(check(mixed.as_bytes(), 2).is_err());
        // 100,000 levels are refused without recursion.
        assert!(check(nested(100_000).as_bytes(), 128).is_err());
    }

    #[test]
    fn numbers_must_fit_a_64_bit_float() {
        let cases: &[(&str, bool)] = &[
            ("0", true),
            ("-12.5e3", true),
            ("1.7976931348623157e308", true),
            ("1e-400", true), // rounds to zero, as every parser does
            (&"9".repeat(300), true),
            ("1e400", false),
            ("-1E400", false),
            ("1.8e308", false),
            (&"9".repeat(400), false),
        ];
        for (number, fits) in cases {
            let json = format!(r#"{{"n": {number}}}"#);
            let result = check(json.as_bytes(), 8);
            assert_eq!(result.is_ok(), *fits, "{number}");
            if let Err(refusal) = result {
                assert_eq!(refusal.code(), "number_out_of_range");
                assert_eq!(refusal.path, ".n");
            }
        }
        // Digits inside strings are text.
        assert!(check(br#"{"n": "1e400"}"#, 8).is_ok());
    }

    #[test]
    fn surrogates_must_come_in_pairs() {
        let cases = [
            (r#""\ud83d\ude00""#, true),          // 😀
            (r#""\u00e9 \u0000 \\ud800""#, true), // an escaped backslash, then text
            (r#""\ud800""#, false),
            (r#""\ud800x""#, false),
            (r#""\ud800\u0041""#, false),
            (r#""\udc00""#, false),
            (r#""ok \uDFFF""#, false),
        ];
        for (json, fine) in cases {
            let result = check(json.as_bytes(), 8);
            assert_eq!(result.is_ok(), fine, "{json}");
            if let Err(refusal) = result {
                assert_eq!(refusal.code(), "lone_surrogate");
            }
        }
        // Keys are strings too.
        assert!(check(br#"{"\udc00": 1}"#, 8).is_err());
    }

    #[test]
    fn refusals_name_the_path_to_the_value() {
        let cases = [
            (r#"[{"a": 1}, {"data": {"n": 1e400}}]"#, "[1].data.n"),
            (r#"{"x": [0, 1, "\ud800"]}"#, ".x[2]"),
            (r#"{"a": {"b": [[]]}}"#, ".a.b[0]"),
            (r#"{"a\"b": 1e999}"#, r#".a\"b"#),
        ];
        for (json, path) in cases {
            let refusal = check(json.as_bytes(), 3).unwrap_err();
            assert_eq!(refusal.path, path, "{json}");
        }
        let deep = check(nested(20).as_bytes(), 10).unwrap_err();
        assert_eq!(deep.path, "[0][0][0][0][0][0][0][0]…");
    }

    #[test]
    fn messages_name_the_value() {
        let refusal = check(br#"{"n": 1e400}"#, 8).unwrap_err();
        assert_eq!(
            refusal.message("data"),
            "`data.n` holds the number 1e400, beyond the range of a 64-bit float (about ±1.8e308)"
        );
        assert!(refusal.message("").starts_with("`n` holds"));
        let deep = check(nested(3).as_bytes(), 2).unwrap_err();
        assert_eq!(
            deep.message("payload"),
            "`payload[0][0]` is nested deeper than 2 levels of arrays and objects"
        );
        let whole = check(b"[[1]]", 1).unwrap_err();
        assert!(
            whole.message("").starts_with("`[0]` is nested"),
            "{}",
            whole.message("")
        );
        let long = check(format!("[{}]", "9".repeat(400)).as_bytes(), 8).unwrap_err();
        assert!(long.message("data").contains("999999999999…(400 digits)"));
    }

    #[test]
    fn text_that_is_not_json_passes_for_its_parser_to_report() {
        for text in ["", "[", "\"unterminated", "\"\\u12", "}}}", "-", "1e"] {
            assert!(check(text.as_bytes(), 4).is_ok(), "{text}");
        }
    }
}
