//! Execution statuses and attempt outcomes: the words stored in PostgreSQL and shown by the API.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where an execution is in its life. `succeeded`, `failed` and `cancelled` are terminal.
    ExecutionStatus {
        Pending => "pending",
        Processing => "processing",
        RetryScheduled => "retry_scheduled",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

impl ExecutionStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

string_enum!(
    /// Where one step of a workflow run is. `succeeded`, `failed`, `skipped` and `cancelled`
    /// are terminal.
    StepStatus {
        /// Its dependencies have not all ended yet.
        Waiting => "waiting",
        /// Handed to the executors (or to the scheduler, for a delay): its attempt is on the way.
        Queued => "queued",
        /// An attempt failed and the next one waits in the scheduler.
        RetryScheduled => "retry_scheduled",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Its `if` did not hold, or a step it depends on was skipped.
        Skipped => "skipped",
        /// The run ended (failed or was cancelled) before it started.
        Cancelled => "cancelled",
    }
);

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled
        )
    }
}

string_enum!(
    /// How one attempt ended.
    AttemptOutcome {
        Succeeded => "succeeded",
        /// Failed, and another attempt is scheduled.
        Retrying => "retrying",
        /// Failed for good: a permanent error or the last attempt.
        Failed => "failed",
    }
);

string_enum!(
    /// Where a retry by filter is: it runs until the filter is exhausted or it is cancelled.
    BulkRetryStatus {
        Running => "running",
        Done => "done",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What went wrong in a failed attempt; recorded on the attempt and used in metrics.
    ErrorKind {
        HttpStatus => "http_status",
        Redirect => "redirect",
        Timeout => "timeout",
        Connect => "connect",
        Dns => "dns",
        Tls => "tls",
        DestinationRefused => "destination_refused",
        Request => "request",
        ActionUnavailable => "action_unavailable",
        /// A `publish` action would chain events deeper than allowed (a loop, most likely).
        ChainTooDeep => "chain_too_deep",
        /// A `publish` action's event could not be handed to the broker.
        Publish => "publish",
        /// A template could not render: a missing value (or secret), too much work or output,
        /// a value a header or URL cannot carry. Permanent: the same event renders the same.
        Template => "template",
        /// The OAuth token endpoint refused the credentials (or, retried, was down).
        Auth => "auth",
        /// An SMTP server answered 4xx: try again later.
        SmtpDeferred => "smtp_deferred",
        /// An SMTP server answered 5xx: the message is refused for good.
        SmtpRejected => "smtp_rejected",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(ExecutionStatus::parse("done"), None);
        let terminal: Vec<_> = ExecutionStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal.len(), 3);
    }
}
