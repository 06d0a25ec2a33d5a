//! When an action's failed attempt is tried again: a list of delays, or a backoff curve.

use serde::{Deserialize, Serialize};

use super::ActionError;
use super::fields::reject_unknown;
use crate::json_tree::{At, Json};

/// Backoff shapes for [`RetryPolicy::Backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Linear,
    Fixed,
}

/// When to try again after a retryable failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RetryPolicy {
    Delays {
        max_attempts: u32,
        delays_s: Vec<u32>,
    },
    Backoff {
        max_attempts: u32,
        backoff: Backoff,
        initial_s: u32,
        max_s: u32,
        #[serde(default)]
        jitter: f64,
    },
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::Delays {
            max_attempts: 5,
            delays_s: vec![30, 60, 300, 900, 3600],
        }
    }
}

/// Most attempts an action may ask for; keeps a misconfiguration from retrying for weeks.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Longest single retry delay, one day.
pub const MAX_DELAY_S: u32 = 86_400;

impl RetryPolicy {
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::Delays { max_attempts, .. } | Self::Backoff { max_attempts, .. } => *max_attempts,
        }
    }

    /// The longest delay this policy can produce: the ceiling for `Retry-After`.
    pub fn max_delay_s(&self) -> u32 {
        match self {
            Self::Delays { delays_s, .. } => delays_s.iter().copied().max().unwrap_or(0),
            Self::Backoff { max_s, .. } => *max_s,
        }
    }

    pub fn parse(value: &Json<'_>) -> Result<Self, ActionError> {
        let Json::Object(map) = value else {
            return Err(ActionError::new("retry", "must be an object"));
        };
        let max_attempts = match map.get("max_attempts") {
            None => 5,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(n))
                .ok_or_else(|| {
                    ActionError::new(
                        "retry.max_attempts",
                        format!("must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}"),
                    )
                })? as u32,
        };
        let delay =
            |field: At<'_>, v: Option<&Json<'_>>, default: u32| -> Result<u32, ActionError> {
                let Some(v) = v else {
                    return Ok(default);
                };
                v.as_u64()
                    .filter(|n| *n <= u64::from(MAX_DELAY_S))
                    .map(|n| n as u32)
                    .ok_or_else(|| {
                        ActionError::new(
                            field,
                            format!("must be a whole number of seconds from 0 to {MAX_DELAY_S}"),
                        )
                    })
            };
        if let Some(backoff) = map.get("backoff") {
            let allowed = ["max_attempts", "backoff", "initial_s", "max_s", "jitter"];
            reject_unknown(map, &allowed, "retry")?;
            let backoff = match backoff.as_str() {
                Some("exponential") => Backoff::Exponential,
                Some("linear") => Backoff::Linear,
                Some("fixed") => Backoff::Fixed,
                _ => {
                    return Err(ActionError::new(
                        "retry.backoff",
                        "must be exponential, linear or fixed",
                    ));
                }
            };
            let retry = At::Root("retry");
            let initial_s = delay(retry.key("initial_s"), map.get("initial_s"), 30)?;
            let max_s = delay(retry.key("max_s"), map.get("max_s"), 3600)?;
            if max_s < initial_s {
                return Err(ActionError::new(
                    "retry.max_s",
                    "must be at least initial_s",
                ));
            }
            let jitter = match map.get("jitter") {
                None => 0.0,
                Some(v) => v
                    .as_f64()
                    .filter(|j| (0.0..=1.0).contains(j))
                    .ok_or_else(|| {
                        ActionError::new("retry.jitter", "must be a number from 0 to 1")
                    })?,
            };
            return Ok(Self::Backoff {
                max_attempts,
                backoff,
                initial_s,
                max_s,
                jitter,
            });
        }
        reject_unknown(map, &["max_attempts", "delays_s"], "retry")?;
        let delays_s = match map.get("delays_s") {
            None => vec![30, 60, 300, 900, 3600],
            Some(Json::Array(items)) if !items.is_empty() && items.len() <= 100 => items
                .iter()
                .enumerate()
                .map(|(i, v)| delay(At::Root("retry.delays_s").index(i), Some(v), 0))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ActionError::new(
                    "retry.delays_s",
                    "must be a list of 1 to 100 delays in seconds",
                ));
            }
        };
        Ok(Self::Delays {
            max_attempts,
            delays_s,
        })
    }
}
