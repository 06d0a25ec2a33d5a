//! Tidy tests (run with the suite): habits the codebase keeps, checked over its files rather
//! than remembered. Each test says what it holds and why.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The product crates: what is deployed (not the tests, not these tools).
    const PRODUCT: [&str; 7] = [
        "common",
        "engine",
        "handlers",
        "ingest",
        "matcher",
        "executor",
        "scheduler",
    ];
    const SERVICES: [&str; 4] = [
        "herald-ingest",
        "herald-matcher",
        "herald-executor",
        "herald-scheduler",
    ];
    /// Longest product source file.
    const MAX_LINES: usize = 600;
    /// Product files allowed past [`MAX_LINES`], each for a reason of its own.
    const LONG_FILES: [(&str, &str); 2] = [
        // The operation table: every HTTP route, its access and its schemas, one row each.
        // Being one table is the point (the router, OpenAPI and access test read it).
        ("ingest/src/api.rs", "the operation table"),
        // A tenant's compact index: its layout and the code that reads it are one structure;
        // the comments on each array are what keeps it understandable.
        ("engine/src/base.rs", "the compact index"),
    ];

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
            .to_path_buf()
    }

    /// Every `.rs` file under `dir`, relative to the workspace root.
    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path
                        .file_name()
                        .is_some_and(|n| n == "target" || n == "node_modules")
                    {
                        continue;
                    }
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    found.push(path.strip_prefix(root()).unwrap_or(&path).to_path_buf());
                }
            }
        }
        found.sort();
        found
    }

    fn product_sources() -> Vec<PathBuf> {
        PRODUCT
            .iter()
            .flat_map(|krate| rust_files(&root().join(krate).join("src")))
            .collect()
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(root().join(path)).expect("readable")
    }

    /// A file without its test code: a `tests.rs` is all tests; elsewhere the tests are the
    /// `#[cfg(test)]` module that ends the file.
    fn without_tests(path: &Path, text: &str) -> String {
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            return String::new();
        }
        match text.find("#[cfg(test)]\nmod tests {") {
            Some(at) => text[..at].to_owned(),
            None => text.to_owned(),
        }
    }

    #[test]
    fn every_source_file_opens_with_a_line_saying_what_it_is() {
        let missing: Vec<PathBuf> = ["common", "engine", "handlers", "ingest", "matcher"]
            .iter()
            .chain(&["executor", "scheduler", "tests", "xtask"])
            .flat_map(|dir| rust_files(&root().join(dir)))
            .filter(|path| !read(path).starts_with("//!"))
            .collect();
        assert!(missing.is_empty(), "no `//!` first line: {missing:?}");
    }

    #[test]
    fn the_documentation_points_nowhere_outside_the_repository() {
        // The contract the project keeps is docs/contract.md; nothing refers to notes that
        // only its developers have.
        let docs = [
            "README.md",
            "ARCHITECTURE.md",
            "BENCHMARKS.md",
            "docs/contract.md",
        ];
        for doc in docs {
            let text = read(Path::new(doc));
            assert!(
                !text.contains("../shared"),
                "{doc} points outside the repository"
            );
        }
    }

    #[test]
    fn no_service_crate_depends_on_another() {
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(root())
            .output()
            .expect("cargo metadata");
        let metadata: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("metadata as JSON");
        let mut edges = Vec::new();
        for package in metadata["packages"].as_array().expect("packages") {
            let name = package["name"].as_str().unwrap_or_default();
            if !SERVICES.contains(&name) {
                continue;
            }
            for dependency in package["dependencies"].as_array().expect("dependencies") {
                let on = dependency["name"].as_str().unwrap_or_default();
                if SERVICES.contains(&on) {
                    edges.push(format!("{name} -> {on}"));
                }
            }
        }
        assert!(
            edges.is_empty(),
            "shared code belongs in a shared crate: {edges:?}"
        );
    }

    #[test]
    fn product_files_stay_short() {
        let long: BTreeMap<String, usize> = product_sources()
            .iter()
            .filter(|path| path.file_name().is_none_or(|n| n != "tests.rs"))
            .map(|path| (path.display().to_string(), read(path).lines().count()))
            .filter(|(path, lines)| {
                *lines > MAX_LINES && !LONG_FILES.iter().any(|(allowed, _)| allowed == path)
            })
            .collect();
        assert!(
            long.is_empty(),
            "over {MAX_LINES} lines (split them, or add a reason to LONG_FILES): {long:?}"
        );
        for (allowed, _) in LONG_FILES {
            assert!(root().join(allowed).exists(), "{allowed} is gone: drop it");
        }
    }

    #[test]
    fn time_is_read_only_through_the_clock_the_tests_control() {
        // Wall time comes from `herald_common::clock` (a test gives a manual clock); durations
        // and timeouts from `tokio::time::Instant`, which tokio's test clock pauses. The
        // clock itself, and the matcher's benchmark tool (which times real work), read the
        // system's.
        let exempt = ["common/src/clock.rs", "matcher/src/bench/"];
        let banned = [
            "Utc::now()",
            "SystemTime::now",
            "std::time::Instant",
            "std::time::SystemTime",
        ];
        let mut found = Vec::new();
        for path in product_sources() {
            let shown = path.display().to_string();
            if exempt.iter().any(|e| shown.starts_with(e)) {
                continue;
            }
            let text = read(&path);
            let code = without_tests(&path, &text);
            let imports_std_instant = code
                .lines()
                .any(|l| l.starts_with("use std::time::{") && l.contains("Instant"));
            for word in banned {
                if code.contains(word) {
                    found.push(format!("{shown}: {word}"));
                }
            }
            if imports_std_instant {
                found.push(format!("{shown}: std's Instant"));
            }
        }
        assert!(found.is_empty(), "{found:?}");
    }
}
