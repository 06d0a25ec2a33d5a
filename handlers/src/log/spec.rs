//! How loud a log action is.

use herald_common::action::{ActionError, reject_unknown};
use herald_common::json_tree::Object;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
}

/// Logs the event (id, type, source, data) at `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogSpec {
    #[serde(default)]
    pub level: LogLevel,
}

/// Checks a `log` handler as an action gives it.
pub fn parse(map: &Object<'_>) -> Result<LogSpec, ActionError> {
    reject_unknown(map, &["type", "level"], "handler")?;
    let level = match map.get("level").map(|v| v.as_str()) {
        None => LogLevel::Info,
        Some(Some("info")) => LogLevel::Info,
        Some(Some("warn")) => LogLevel::Warn,
        Some(_) => {
            return Err(ActionError::new(
                "handler.level",
                "must be \"info\" or \"warn\"",
            ));
        }
    };
    Ok(LogSpec { level })
}
