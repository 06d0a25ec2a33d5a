//! The configuration reference, made from `defaults.toml` itself: every key, its environment
//! variable, its default and the comment above it. The README carries this table, and a test
//! fails while the two differ (`cargo xtask docs` rewrites it).

use super::DEFAULTS;

/// The reference as a Markdown table.
pub fn reference_table() -> String {
    let mut table =
        String::from("| key | environment variable | default | meaning |\n|---|---|---|---|\n");
    let mut section = String::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in DEFAULTS.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix('#') {
            comment.push(text.trim());
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            comment.clear();
        } else if let Some((key, value)) = line.split_once(" = ") {
            let default = match value {
                "\"\"" | "[]" => "empty".to_owned(),
                quoted if quoted.starts_with('"') => format!("`{}`", quoted.trim_matches('"')),
                other => format!("`{other}`"),
            };
            table.push_str(&format!(
                "| `{section}.{key}` | `HERALD_{}__{}` | {default} | {} |\n",
                section.to_uppercase().replace('.', "__"),
                key.to_uppercase(),
                comment.join(" ")
            ));
            comment.clear();
        } else {
            comment.clear();
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_its_row_and_its_words() {
        let table = reference_table();
        let rows: Vec<&str> = table.lines().skip(2).collect();
        let keys = DEFAULTS
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .count();
        assert_eq!(rows.len(), keys);
        for row in rows {
            let meaning = row.rsplit('|').nth(1).unwrap_or_default().trim();
            assert!(!meaning.is_empty(), "undocumented: {row}");
        }
        assert!(table.contains(
            "| `amqp.url` | `HERALD_AMQP__URL` | `amqp://guest:guest@127.0.0.1:5672/%2f` |"
        ));
        assert!(table.contains("| `ingest.admin_token` | `HERALD_INGEST__ADMIN_TOKEN` | empty |"));
    }
}
