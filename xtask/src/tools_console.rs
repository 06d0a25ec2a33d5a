//! Installs what the console's end-to-end test (`tests/it/console.rs`) drives: Debian's
//! Chromium (the test never downloads a browser of its own) and the script's npm packages
//! (`playwright-core`, `axe-core`) from `tests/console/package-lock.json` with `npm ci`.

use std::path::Path;

use anyhow::bail;

use crate::packages::{apt_install, npm_ci_when_stale};

const CHROMIUM: &str = "/usr/bin/chromium";
const CONSOLE_TESTS: &str = "tests/console";

pub fn ensure_console_tools(root: &Path) -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("==> installing chromium from the OS packages (the console's browser tests)");
        apt_install(&["chromium"])?;
        if !Path::new(CHROMIUM).exists() {
            bail!("the chromium package installed no {CHROMIUM}");
        }
    }
    npm_ci_when_stale(&root.join(CONSOLE_TESTS), "playwright-core and axe-core")
}
