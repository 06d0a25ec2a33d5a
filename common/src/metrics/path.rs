//! The steps of an event's way through Herald, as the `step` label of
//! `herald_path_step_seconds`: with `herald_broker_hop_seconds` (publish to consume, per
//! queue), the latency budget of one event, hop by hop, read from any running cluster.

use std::time::Duration;

use super::Metrics;

/// A step one process takes on an event's way, timed where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStep {
    /// From a request's events reaching ingest's batcher to their batch's write starting.
    IngestBatchWait,
    /// Storing a batch of events with their outbox rows (one statement, one commit).
    IngestEventCommit,
    /// Publishing a stored batch and waiting for the broker's confirm.
    IngestEventPublish,
    /// Waiting, before matching a batch, for the engine to hold every action saved before its
    /// events were accepted (a barrier on the change channel, decision 0048).
    MatcherBarrier,
    /// Matching a batch of events in the engine.
    MatcherMatch,
    /// Recording a batch's executions and marking its events matched (one commit).
    MatcherExecutionsCommit,
    /// Publishing a batch's jobs and waiting for the broker's confirms.
    MatcherJobsPublish,
    /// From a job's delivery to its request leaving: the action, limits, circuit, the check
    /// that the attempt is still due, secrets and the destination's slot.
    ExecutorPrepare,
    /// The attempt itself (the request and its answer).
    ExecutorRequest,
    /// Recording the attempt's outcome (and handing on a retry or a failure).
    ExecutorRecord,
}

impl PathStep {
    pub const ALL: [PathStep; 10] = [
        PathStep::IngestBatchWait,
        PathStep::IngestEventCommit,
        PathStep::IngestEventPublish,
        PathStep::MatcherBarrier,
        PathStep::MatcherMatch,
        PathStep::MatcherExecutionsCommit,
        PathStep::MatcherJobsPublish,
        PathStep::ExecutorPrepare,
        PathStep::ExecutorRequest,
        PathStep::ExecutorRecord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PathStep::IngestBatchWait => "ingest_batch_wait",
            PathStep::IngestEventCommit => "ingest_event_commit",
            PathStep::IngestEventPublish => "ingest_event_publish",
            PathStep::MatcherBarrier => "matcher_barrier",
            PathStep::MatcherMatch => "matcher_match",
            PathStep::MatcherExecutionsCommit => "matcher_executions_commit",
            PathStep::MatcherJobsPublish => "matcher_jobs_publish",
            PathStep::ExecutorPrepare => "executor_prepare",
            PathStep::ExecutorRequest => "executor_request",
            PathStep::ExecutorRecord => "executor_record",
        }
    }
}

impl Metrics {
    /// Records that `step` took `took`.
    pub fn step_took(&self, step: PathStep, took: Duration) {
        self.path_step
            .with_label_values(&[step.as_str()])
            .observe(took.as_secs_f64());
    }

    /// Records that `step` took from `since` until now.
    pub fn step_since(&self, step: PathStep, since: tokio::time::Instant) {
        self.step_took(step, since.elapsed());
    }
}
