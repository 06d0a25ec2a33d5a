//! What an attempt runs with: the job, the time it started, and the ways out of the process.

use chrono::{DateTime, Utc};
use herald_common::broker::Publisher;
use herald_common::messages::ExecutionJob;

use crate::client::Outbound;

/// One attempt's surroundings.
pub struct Context<'a> {
    /// The execution, its attempt number and its event (whose `trace` is the attempt's span).
    pub job: &'a ExecutionJob,
    /// When the attempt starts: the signature's timestamp.
    pub now: DateTime<Utc>,
    pub outbound: &'a Outbound,
    /// Where chained events go; `None` where nothing may be published (a test send).
    pub publisher: Option<&'a Publisher>,
}
