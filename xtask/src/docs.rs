//! `cargo xtask docs`: the README's tables that are made from the code (the error codes and
//! the configuration reference), rewritten in place between their markers. A test fails
//! while the committed README differs from what this makes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

/// A generated block: its name and its contents.
fn blocks() -> [(&'static str, String); 2] {
    [
        ("errors", herald_ingest::error_codes::reference_table()),
        ("configuration", herald_common::config::reference_table()),
    ]
}

/// `readme` with every generated block made afresh.
pub fn render(readme: &str) -> anyhow::Result<String> {
    let mut text = readme.to_owned();
    for (name, contents) in blocks() {
        let start = format!("<!-- {name}: made by `cargo xtask docs` -->\n");
        let end = format!("<!-- /{name} -->");
        let (Some(from), Some(to)) = (text.find(&start), text.find(&end)) else {
            bail!("README.md has no `{}` … `{end}` block", start.trim_end());
        };
        text.replace_range(from + start.len()..to, &contents);
    }
    Ok(text)
}

pub fn run(root: &Path) -> anyhow::Result<ExitCode> {
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path).context("reading README.md")?;
    std::fs::write(&path, render(&readme)?).context("writing README.md")?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_tables_match_the_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
        assert!(
            render(&readme).expect("the blocks") == readme,
            "README.md's generated tables are out of date: run `cargo xtask docs`"
        );
    }
}
