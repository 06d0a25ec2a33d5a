//! Reading only what conditions need from raw JSON, without building a tree.
//!
//! Matching is dominated by parsing when every event is turned into a `serde_json::Value`. Here
//! a cursor walks the bytes once: values under paths some condition uses are read, everything
//! else is skipped by counting brackets. Malformed input is an error, never a panic.

use std::borrow::Cow;

/// A value found at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    Null,
    /// An object or array: the path exists but holds no scalar.
    Composite,
}

/// The JSON was not well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON at byte {0}")]
pub struct Malformed(pub usize);

type Result<T> = std::result::Result<T, Malformed>;

/// The paths a tenant's conditions read, as a tree of object keys. Node 0 is the root.
///
/// Flat, so that walking it touches a few cache lines: nodes in one array, each node's children
/// side by side in another, keys in one string. A child carries its key's length and first eight
/// bytes, which settle most comparisons without reading the key itself (event keys are short).
#[derive(Debug, Clone, Default)]
pub struct PathTrie {
    nodes: Vec<TrieNode>,
    children: Vec<TrieChild>,
    keys: String,
}

#[derive(Debug, Clone, Copy)]
struct TrieNode {
    /// This node's children are `children[first..first + count]`.
    first: u32,
    count: u32,
    /// The path id recorded for values at this node, or `NO_PATH`.
    path: u32,
}

const NO_PATH: u32 = u32::MAX;

impl TrieNode {
    const EMPTY: Self = Self {
        first: 0,
        count: 0,
        path: NO_PATH,
    };
}

#[derive(Debug, Clone, Copy)]
struct TrieChild {
    /// The key's first eight bytes, zero-padded.
    prefix: u64,
    len: u32,
    /// Where the key starts in `keys`.
    at: u32,
    node: u32,
}

fn prefix_of(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_le_bytes(bytes)
}

impl PathTrie {
    pub fn new() -> Self {
        Self {
            nodes: vec![TrieNode::EMPTY],
            ..Self::default()
        }
    }

    /// Adds `segments` (below the root) with `path_id`. (Building is rare and tries are small:
    /// a new child is inserted among its siblings, moving those after it.)
    pub fn insert(&mut self, segments: &[&str], path_id: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::EMPTY);
        }
        let mut node = 0u32;
        for segment in segments {
            node = match self.child(node, segment) {
                Some(child) => child,
                None => self.add_child(node, segment),
            };
        }
        self.nodes[node as usize].path = path_id;
    }

    fn add_child(&mut self, parent: u32, key: &str) -> u32 {
        let child_node = self.nodes.len() as u32;
        self.nodes.push(TrieNode::EMPTY);
        let TrieNode { first, count, .. } = self.nodes[parent as usize];
        // A parent without children gets its run at the end.
        let at = if count == 0 {
            self.children.len() as u32
        } else {
            first + count
        };
        let child = TrieChild {
            prefix: prefix_of(key.as_bytes()),
            len: key.len() as u32,
            at: self.keys.len() as u32,
            node: child_node,
        };
        self.keys.push_str(key);
        self.children.insert(at as usize, child);
        for (n, other) in self.nodes.iter_mut().enumerate() {
            if n as u32 != parent && other.count > 0 && other.first >= at {
                other.first += 1;
            }
        }
        let parent = &mut self.nodes[parent as usize];
        parent.first = at - count;
        parent.count += 1;
        child_node
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1 && self.nodes.first().is_none_or(|n| n.path == NO_PATH)
    }

    fn key(&self, child: &TrieChild) -> &str {
        &self.keys[child.at as usize..(child.at + child.len) as usize]
    }

    fn children(&self, node: u32) -> &[TrieChild] {
        let TrieNode { first, count, .. } = self.nodes[node as usize];
        &self.children[first as usize..(first + count) as usize]
    }

    fn child(&self, node: u32, key: &str) -> Option<u32> {
        let (len, prefix) = (key.len() as u32, prefix_of(key.as_bytes()));
        self.children(node)
            .iter()
            .find(|c| c.len == len && c.prefix == prefix && (len <= 8 || self.key(c) == key))
            .map(|c| c.node)
    }

    fn path(&self, node: u32) -> Option<u32> {
        Some(self.nodes[node as usize].path).filter(|p| *p != NO_PATH)
    }

    /// The root's direct children that are paths themselves: `(key, path id)`.
    pub fn top_level(&self) -> impl Iterator<Item = (&str, u32)> {
        let root = if self.nodes.is_empty() {
            &[][..]
        } else {
            self.children(0)
        };
        root.iter()
            .filter_map(move |c| Some((self.key(c), self.path(c.node)?)))
    }

    /// Asks for the memory a walk reads: the nodes and their children (a tenant's trie is a
    /// few lines; the keys are rarely read, see `TrieChild`).
    pub fn prefetch(&self) {
        super::prefetch::slice(&self.nodes);
        super::prefetch::slice(&self.children);
    }

    fn has_children(&self, node: u32) -> bool {
        self.nodes[node as usize].count > 0
    }
}

impl super::memory::HeapBytes for PathTrie {
    fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<TrieNode>()
            + self.children.capacity() * size_of::<TrieChild>()
            + self.keys.capacity()
    }
}

/// Values found for each path id, reused from event to event.
#[derive(Debug, Default)]
pub struct Found<'a> {
    values: smallvec::SmallVec<[(u32, Val<'a>); 16]>,
}

impl<'a> Found<'a> {
    pub fn clear(&mut self) {
        self.values.clear();
    }

    pub fn push(&mut self, path: u32, value: Val<'a>) {
        self.values.push((path, value));
    }

    /// Every value found at `path` (several when the path crossed arrays).
    pub fn get(&self, path: u32) -> impl Iterator<Item = &Val<'a>> {
        self.values
            .iter()
            .filter(move |(p, _)| *p == path)
            .map(|(_, v)| v)
    }
}

/// A position in a JSON text.
pub struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// Text is already valid UTF-8, so strings found in it need no second check.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn error<T>(&self) -> Result<T> {
        Err(Malformed(self.at))
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.bytes.get(self.at) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.at += 1;
            } else {
                break;
            }
        }
    }

    pub fn skip_whitespace(&mut self) {
        self.skip_ws();
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.error()
        }
    }

    /// Reads a string at the cursor; borrowed unless it holds escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.at;
        let end = self.string_end()?;
        let raw = &self.bytes[start..end];
        self.at = end + 1;
        if raw.contains(&b'\\') {
            // Rare: let serde_json apply the escape rules.
            serde_json::from_str::<String>(&self.text[start - 1..self.at])
                .map(Cow::Owned)
                .map_err(|_| Malformed(start))
        } else {
            // Both ends are ASCII quotes, so the slice falls on character boundaries.
            Ok(Cow::Borrowed(&self.text[start..end]))
        }
    }

    /// The index of the quote closing the string whose body starts at the cursor. Strings in
    /// events are short, so a plain loop beats a vectorised search here.
    fn string_end(&self) -> Result<usize> {
        let mut at = self.at;
        while let Some(&b) = self.bytes.get(at) {
            match b {
                b'"' => return Ok(at),
                b'\\' => at += 2,
                _ => at += 1,
            }
        }
        Err(Malformed(self.at))
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            self.error()
        }
    }

    fn number(&mut self) -> Result<f64> {
        let start = self.at;
        while let Some(b) = self.bytes.get(self.at) {
            if matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                self.at += 1;
            } else {
                break;
            }
        }
        self.text[start..self.at]
            .parse::<f64>()
            .map_err(|_| Malformed(start))
    }

    /// Reads a scalar, or skips a composite and reports it as such.
    pub fn value(&mut self) -> Result<Val<'a>> {
        match self.peek() {
            Some(b'"') => self.string().map(Val::Str),
            Some(b't') => self.literal(b"true").map(|_| Val::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Val::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|_| Val::Null),
            Some(b'{' | b'[') => self.skip().map(|_| Val::Composite),
            Some(b'-' | b'0'..=b'9') => self.number().map(Val::Num),
            _ => self.error(),
        }
    }

    /// Skips one value of any kind.
    pub fn skip(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'{' | b'[') => {}
            Some(_) => return self.value().map(|_| ()),
            None => return self.error(),
        }
        let mut depth = 0usize;
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b'"' => {
                    self.at += 1;
                    self.at = self.string_end()? + 1;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1).ok_or(Malformed(self.at))?;
                    if depth == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        self.error()
    }

    /// Visits the members of an object at the cursor: `visit(key, cursor)` must consume the
    /// member's value.
    pub fn object(&mut self, mut visit: impl FnMut(&str, &mut Self) -> Result<()>) -> Result<()> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            visit(&key, self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return self.error(),
            }
        }
    }

    /// Visits the elements of an array at the cursor: `visit` must consume each element.
    pub fn array(&mut self, mut visit: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            visit(self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return self.error(),
            }
        }
    }

    /// Where the cursor is, and the bytes from `start` to it.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn slice(&self, start: usize) -> &'a str {
        &self.text[start..self.at]
    }

    /// Fails unless only whitespace is left.
    pub fn finish(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.error(),
        }
    }
}

/// Records, into `found`, every value of `json` under a path of `trie`. A path that meets an
/// array continues into each element.
pub fn extract<'a>(json: &'a str, trie: &PathTrie, found: &mut Found<'a>) -> Result<()> {
    if trie.is_empty() {
        return Ok(());
    }
    let mut cursor = Cursor::new(json);
    walk(&mut cursor, trie, 0, found)?;
    cursor.finish()
}

/// Records the values under `trie`'s paths in the value at the cursor, consuming it.
pub fn walk<'a>(
    cursor: &mut Cursor<'a>,
    trie: &PathTrie,
    node: u32,
    found: &mut Found<'a>,
) -> Result<()> {
    walk_value(cursor, trie, node, found, true)
}

/// `composite_counts`: whether an object or array here counts as a value of the node's path.
/// True for the value a path names; false for the elements of an array already counted, whose
/// scalars still count but whose own nesting does not.
fn walk_value<'a>(
    cursor: &mut Cursor<'a>,
    trie: &PathTrie,
    node: u32,
    found: &mut Found<'a>,
    composite_counts: bool,
) -> Result<()> {
    let composite = matches!(cursor.peek(), Some(b'{' | b'['));
    if composite
        && composite_counts
        && let Some(path) = trie.path(node)
    {
        found.push(path, Val::Composite);
    }
    match cursor.peek() {
        Some(b'{') if !trie.has_children(node) => cursor.skip(),
        Some(b'{') => cursor.object(|key, cursor| match trie.child(node, key) {
            Some(child) => walk_value(cursor, trie, child, found, true),
            None => cursor.skip(),
        }),
        // Each element continues the same path.
        Some(b'[') => cursor.array(|cursor| walk_value(cursor, trie, node, found, false)),
        _ => {
            let value = cursor.value()?;
            if let Some(path) = trie.path(node) {
                found.push(path, value);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(paths: &[&str]) -> PathTrie {
        let mut trie = PathTrie::new();
        for (i, path) in paths.iter().enumerate() {
            let segments: Vec<&str> = path.split('.').collect();
            trie.insert(&segments, i as u32);
        }
        trie
    }

    fn values(json: &str, paths: &[&str], path: u32) -> Vec<Val<'static>> {
        let trie = trie(paths);
        let mut found = Found::default();
        extract(json, &trie, &mut found).unwrap();
        found
            .get(path)
            .map(|v| match v {
                Val::Str(s) => Val::Str(Cow::Owned(s.to_string())),
                Val::Num(n) => Val::Num(*n),
                Val::Bool(b) => Val::Bool(*b),
                Val::Null => Val::Null,
                Val::Composite => Val::Composite,
            })
            .collect()
    }

    #[test]
    fn paths_added_in_any_order_are_all_found() {
        // Children added to earlier nodes after later nodes have children of their own, and
        // keys longer than eight bytes that share their first eight.
        let paths = [
            "a.x",
            "b.y",
            "a.z",
            "a.x.q",
            "c",
            "b.w",
            "customer_id.v",
            "customer_id2",
            "a.x.r",
        ];
        let json = r#"{"a": {"x": {"q": 1, "r": 2}, "z": 3}, "b": {"y": 4, "w": 5}, "c": 6,
                       "customer_id": {"v": 7}, "customer_id2": 8}"#;
        let expected = [
            vec![Val::Composite],
            vec![Val::Num(4.0)],
            vec![Val::Num(3.0)],
            vec![Val::Num(1.0)],
            vec![Val::Num(6.0)],
            vec![Val::Num(5.0)],
            vec![Val::Num(7.0)],
            vec![Val::Num(8.0)],
            vec![Val::Num(2.0)],
        ];
        for (id, want) in expected.iter().enumerate() {
            assert_eq!(&values(json, &paths, id as u32), want, "{}", paths[id]);
        }
        let trie = trie(&paths);
        let top: Vec<_> = trie.top_level().collect();
        assert_eq!(top, [("c", 4), ("customer_id2", 7)]);
    }

    #[test]
    fn finds_scalars_and_skips_the_rest() {
        let json = r#"{"skip": {"deep": [1, {"x": "}"}]}, "a": {"b": 5, "c": "x\"y"}, "n": null}"#;
        assert_eq!(values(json, &["a.b"], 0), vec![Val::Num(5.0)]);
        assert_eq!(values(json, &["a.c"], 0), vec![Val::Str("x\"y".into())]);
        assert_eq!(values(json, &["n"], 0), vec![Val::Null]);
        assert_eq!(values(json, &["a"], 0), vec![Val::Composite]);
        assert_eq!(values(json, &["missing"], 0), vec![]);
        assert_eq!(values(json, &["a.b.c"], 0), vec![]);
    }

    #[test]
    fn arrays_fan_out_at_any_depth() {
        let json = r#"{"items": [{"sku": "a", "tags": ["x", "y"]}, {"sku": "b"}, [{"sku": "c"}]]}"#;
        assert_eq!(
            values(json, &["items.sku"], 0),
            vec![
                Val::Str("a".into()),
                Val::Str("b".into()),
                Val::Str("c".into())
            ]
        );
        assert_eq!(
            values(json, &["items.tags"], 0),
            vec![Val::Composite, Val::Str("x".into()), Val::Str("y".into())]
        );
        let json = r#"{"tags": ["p", "q"]}"#;
        assert_eq!(
            values(json, &["tags"], 0),
            vec![Val::Composite, Val::Str("p".into()), Val::Str("q".into())]
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let trie = trie(&["a.b"]);
        for bad in [
            "",
            "{",
            "{\"a\"",
            "{\"a\":}",
            "{\"a\": {\"b\": tru}}",
            "[1,",
            "\"abc",
            "{\"a\":1}}",
            "{\"a\":\"\\",
            "}",
            "{\"a\": [1 2]}",
            "{\"a\": -}",
        ] {
            let mut found = Found::default();
            assert!(extract(bad, &trie, &mut found).is_err(), "{bad:?}");
        }
    }
}
