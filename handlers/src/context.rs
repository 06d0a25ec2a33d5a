//! What an attempt runs with: the job, the time it started, its action's name and secrets, and
//! the ways out of the process.

use chrono::{DateTime, Utc};
use herald_common::broker::Publisher;
use herald_common::messages::ExecutionJob;
use herald_common::store::SecretValues;

use crate::client::Outbound;
use crate::template::{RenderContext, Steps};

/// One attempt's surroundings.
pub struct Context<'a> {
    /// The execution, its attempt number and its event (whose `trace` is the attempt's span).
    pub job: &'a ExecutionJob,
    /// When the attempt starts: the signature's timestamp.
    pub now: DateTime<Utc>,
    /// The action's name, as templates see it (`action.name`).
    pub action_name: &'a str,
    /// The tenant secrets the action's templates use, opened.
    pub secrets: &'a SecretValues,
    pub outbound: &'a Outbound,
    /// Where chained events go; `None` where nothing may be published (a test send).
    pub publisher: Option<&'a Publisher>,
    /// In a workflow's step: the outputs of the steps that succeeded before it.
    pub steps: Option<&'a Steps>,
}

impl Context<'_> {
    /// What the action's templates see in this attempt.
    pub fn render_context(&self) -> RenderContext {
        RenderContext::with_steps(self.job, self.action_name, self.secrets, self.steps)
    }

    /// The secret values, which nothing recorded may hold.
    pub fn secret_values(&self) -> Vec<&str> {
        self.secrets.values().collect()
    }
}
