//! Every metric Herald exports, declared once. Names carry the `herald_` prefix and their unit;
//! labels are bounded sets (never a tenant, URL or endpoint).

use crate::broker::topology;
use crate::clock::Clock as _;
use prometheus::{
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
    TextEncoder,
};

mod path;
mod register;
pub use path::PathStep;
use register::{counter, counter_vec, float_gauge, gauge_vec, histogram, histogram_vec, int_gauge};

/// Buckets for sub-millisecond to multi-second operations.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for the steps of an event's path: most take tens of microseconds to milliseconds.
const STEP_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// A process's metrics. Cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub build_info: IntGaugeVec,
    pub http_requests: IntCounterVec,
    pub http_request_duration: HistogramVec,
    pub events_received: IntCounterVec,
    pub stage_messages: IntCounterVec,
    pub stage_in_flight: IntGaugeVec,
    pub stage_last_processed: IntGaugeVec,
    pub matches_per_event: Histogram,
    pub executions_completed: IntCounterVec,
    pub attempt_duration: HistogramVec,
    pub path_step: HistogramVec,
    pub broker_hop: HistogramVec,
    pub retries_scheduled: IntCounter,
    pub workflow_steps: IntCounterVec,
    pub delayed_jobs_released: IntCounter,
    pub delayed_release_lateness: Histogram,
    pub dead_letters: IntCounterVec,
    pub publisher_confirms: IntCounterVec,
    pub redeliveries: IntCounterVec,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max_connections: IntGauge,
    pub actions_loaded: prometheus::IntGauge,
    pub action_changes: IntCounterVec,
    pub circuits: IntGaugeVec,
    pub circuit_transitions: IntCounterVec,
    pub attempts_held: IntCounterVec,
    pub destination_in_flight: prometheus::IntGauge,
    pub executions_recovered: IntCounterVec,
    pub executions_retried: IntCounterVec,
    pub outbox_republished: IntCounter,
    pub retention_deleted: IntCounterVec,
    pub delayed_jobs: prometheus::IntGauge,
    pub delayed_jobs_overdue_oldest: prometheus::Gauge,
    pub queue_depth: IntGaugeVec,
    pub admission_backlog: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric, tagged with the service's name in `build_info`.
    pub fn new(service: &str) -> Self {
        let r = Registry::new();
        let metrics = Self {
            build_info: gauge_vec(
                &r,
                "herald_build_info",
                "Always 1; labels carry the build.",
                &["service", "version"],
            ),
            http_requests: counter_vec(
                &r,
                "herald_http_requests_total",
                "HTTP requests answered.",
                &["route", "method", "status"],
            ),
            http_request_duration: histogram_vec(
                &r,
                "herald_http_request_duration_seconds",
                "Time to answer an HTTP request.",
                &["route", "method"],
                LATENCY_BUCKETS,
            ),
            events_received: counter_vec(
                &r,
                "herald_events_received_total",
                "Events offered to Herald, by door and result.",
                &["door", "result"],
            ),
            stage_messages: counter_vec(
                &r,
                "herald_stage_messages_total",
                "Items entering each pipeline stage (in) and leaving it done or handed on (out); \
                 an item that fails and comes back is counted in again.",
                &["stage", "direction"],
            ),
            stage_in_flight: gauge_vec(
                &r,
                "herald_stage_in_flight",
                "Items a stage holds right now.",
                &["stage"],
            ),
            stage_last_processed: gauge_vec(
                &r,
                "herald_stage_last_processed_timestamp_seconds",
                "Unix time a stage last finished an item (counted out).",
                &["stage"],
            ),
            matches_per_event: histogram(
                &r,
                "herald_matches_per_event",
                "Actions matched by one event.",
                vec![0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0],
            ),
            executions_completed: counter_vec(
                &r,
                "herald_executions_completed_total",
                "Executions reaching a terminal state.",
                &["status"],
            ),
            attempt_duration: histogram_vec(
                &r,
                "herald_attempt_duration_seconds",
                "Duration of one delivery attempt.",
                &["outcome"],
                LATENCY_BUCKETS,
            ),
            path_step: histogram_vec(
                &r,
                "herald_path_step_seconds",
                "Time one step of an event's path took in this process (see `step`).",
                &["step"],
                STEP_BUCKETS,
            ),
            broker_hop: histogram_vec(
                &r,
                "herald_broker_hop_seconds",
                "From a message's publishing to its consumer taking it, per queue (both clocks are the machines' own).",
                &["queue"],
                STEP_BUCKETS,
            ),
            retries_scheduled: counter(
                &r,
                "herald_retries_scheduled_total",
                "Attempts that failed and were scheduled again.",
            ),
            workflow_steps: counter_vec(
                &r,
                "herald_workflow_steps_total",
                "Workflow steps' attempts recorded, by the step's handler type (none for set and wait steps) and how each ended.",
                &["handler", "status"],
            ),
            delayed_jobs_released: counter(
                &r,
                "herald_delayed_jobs_released_total",
                "Delayed jobs published when due.",
            ),
            delayed_release_lateness: histogram(
                &r,
                "herald_delayed_release_lateness_seconds",
                "How long after its due time a delayed job was released.",
                LATENCY_BUCKETS.to_vec(),
            ),
            dead_letters: counter_vec(
                &r,
                "herald_dead_letters_total",
                "Messages sent to the dead-letter queue, by reason code.",
                &["queue", "reason"],
            ),
            publisher_confirms: counter_vec(
                &r,
                "herald_publisher_confirms_total",
                "Broker answers to publishes.",
                &["result"],
            ),
            redeliveries: counter_vec(
                &r,
                "herald_redeliveries_total",
                "Deliveries the broker had handed out before.",
                &["queue"],
            ),
            db_pool_connections: gauge_vec(
                &r,
                "herald_db_pool_connections",
                "Database pool connections by state.",
                &["state"],
            ),
            db_pool_max_connections: int_gauge(
                &r,
                "herald_db_pool_max_connections",
                "The most connections this process's database pool may open (its configured \
                 maximum): the capacity herald_db_pool_connections is measured against.",
            ),
            actions_loaded: {
                let metric = prometheus::IntGauge::new(
                    "herald_actions_loaded",
                    "Live actions in this process's matching engine.",
                )
                .expect("valid metric");
                r.register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            },
            action_changes: counter_vec(
                &r,
                "herald_action_changes_total",
                "Action changes applied to the matching engine, by how they arrived.",
                &["via"],
            ),
            circuits: gauge_vec(
                &r,
                "herald_circuits",
                "Destinations whose circuit is not closed, by state, as this executor sees them.",
                &["state"],
            ),
            circuit_transitions: counter_vec(
                &r,
                "herald_circuit_transitions_total",
                "Circuit state changes this process made, by the state entered.",
                &["to"],
            ),
            attempts_held: counter_vec(
                &r,
                "herald_attempts_held_total",
                "Attempts held back without being spent, by reason.",
                &["reason"],
            ),
            destination_in_flight: {
                let metric = prometheus::IntGauge::new(
                    "herald_destination_in_flight",
                    "Attempts in flight or waiting for a destination slot in this executor.",
                )
                .expect("valid metric");
                r.register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            },
            executions_recovered: counter_vec(
                &r,
                "herald_executions_recovered_total",
                "Stuck executions sent again by the scheduler, by reason (lease_expired: its executor died or hung mid-attempt; overdue: its job was lost).",
                &["reason"],
            ),
            executions_retried: counter_vec(
                &r,
                "herald_executions_retried_total",
                "Finished executions reopened for one more attempt, by how (one: by id; bulk: by filter).",
                &["by"],
            ),
            outbox_republished: counter(
                &r,
                "herald_outbox_events_republished_total",
                "Accepted events published again because no matcher had recorded them in time.",
            ),
            retention_deleted: counter_vec(
                &r,
                "herald_retention_deleted_rows_total",
                "Rows deleted by retention, by table.",
                &["table"],
            ),
            delayed_jobs: int_gauge(
                &r,
                "herald_delayed_jobs",
                "Jobs held by the scheduler (retries, held-back attempts, scheduled \
                 deliveries), due or not; counted up to a million.",
            ),
            delayed_jobs_overdue_oldest: float_gauge(
                &r,
                "herald_delayed_jobs_overdue_oldest_seconds",
                "How long the oldest due job has waited past its time to be released; 0 \
                 when none is overdue.",
            ),
            queue_depth: gauge_vec(
                &r,
                "herald_queue_depth_messages",
                "Messages ready in each of Herald's queues, sampled by the scheduler.",
                &["queue"],
            ),
            admission_backlog: int_gauge(
                &r,
                "herald_admission_backlog_messages",
                "Messages waiting ahead of delivery as this service's admission control last \
                 sampled them (ingest: the matcher's and executor's queues; matcher: the \
                 executor's).",
            ),
            registry: r,
        };
        metrics
            .build_info
            .with_label_values(&[service, env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics.precreate_series();
        metrics
    }

    /// Labelled series with a known, small set of values exist from the start at zero, so
    /// that rates and alerts see a zero rather than nothing.
    fn precreate_series(&self) {
        for door in Door::ALL {
            for result in Received::ALL {
                self.events_received
                    .with_label_values(&[door.as_str(), result.as_str()]);
            }
        }
        for status in ["succeeded", "failed", "cancelled"] {
            self.executions_completed.with_label_values(&[status]);
        }
        for state in ["closed", "open", "half_open"] {
            self.circuits.with_label_values(&[state]);
            self.circuit_transitions.with_label_values(&[state]);
        }
        for result in ["ack", "nack", "returned"] {
            self.publisher_confirms.with_label_values(&[result]);
        }
        // Every consumer queue with every reason it could dead-letter with (a job queue never
        // sees an event's reasons, but a zero costs nothing): the first dead letter of a kind
        // is then an increase Prometheus sees.
        for queue in [
            topology::MATCHER_QUEUE,
            topology::EXECUTOR_FIRST_QUEUE,
            topology::EXECUTOR_RETRY_QUEUE,
            topology::SCHEDULER_QUEUE,
        ] {
            self.redeliveries.with_label_values(&[queue]);
            for code in crate::messages::DEAD_LETTER_CODES {
                self.dead_letters.with_label_values(&[queue, code]);
            }
        }
        for reason in ["lease_expired", "overdue"] {
            self.executions_recovered.with_label_values(&[reason]);
        }
        for by in ["one", "bulk"] {
            self.executions_retried.with_label_values(&[by]);
        }
        for table in ["attempts", "executions", "events", "actions"] {
            self.retention_deleted.with_label_values(&[table]);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Records that `count` items entered `stage`: counted in, and in flight until the returned
    /// work is counted out with [`StageWork::done`] or dropped (failed: it will come back and be
    /// counted in again).
    pub fn stage_enter(&self, stage: Stage, count: u64) -> StageWork {
        let label = [stage.as_str()];
        self.stage_messages
            .with_label_values(&[stage.as_str(), "in"])
            .inc_by(count);
        let in_flight = self.stage_in_flight.with_label_values(&label);
        in_flight.add(count as i64);
        StageWork {
            // Created before the first item is done, so a rate of `out` starts from zero.
            out: self
                .stage_messages
                .with_label_values(&[stage.as_str(), "out"]),
            in_flight,
            last: self.stage_last_processed.with_label_values(&label),
            pending: count,
        }
    }

    /// Counts `count` events offered to Herald by `door`, with what became of them.
    pub fn count_events(&self, door: Door, result: Received, count: u64) {
        self.events_received
            .with_label_values(&[door.as_str(), result.as_str()])
            .inc_by(count);
    }
}

/// The pipeline stages, as the `stage` label of the `herald_stage_*` metrics names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Events stored and published by ingest.
    Ingest,
    /// Events matched, their executions recorded and jobs published.
    Matcher,
    /// Jobs attempted (or held) and recorded.
    Executor,
    /// Delayed jobs taken from the broker into PostgreSQL.
    SchedulerIntake,
    /// Due jobs published back to the executors.
    SchedulerRelease,
    /// Accepted but unmatched events republished by the scheduler.
    Outbox,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Ingest,
        Stage::Matcher,
        Stage::Executor,
        Stage::SchedulerIntake,
        Stage::SchedulerRelease,
        Stage::Outbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Matcher => "matcher",
            Stage::Executor => "executor",
            Stage::SchedulerIntake => "scheduler_intake",
            Stage::SchedulerRelease => "scheduler_release",
            Stage::Outbox => "outbox",
        }
    }
}

/// Items a stage took in and has not finished yet. Whatever is not counted out when this is
/// dropped failed (it will be redelivered or retried): it leaves the in-flight gauge only, so
/// that `out` means done or handed on.
#[derive(Debug)]
#[must_use = "dropping it at once counts nothing out"]
pub struct StageWork {
    out: IntCounter,
    in_flight: IntGauge,
    last: IntGauge,
    pending: u64,
}

impl StageWork {
    /// Counts `count` of the items out now (at most what is still pending).
    pub fn done(&mut self, count: u64) {
        let count = count.min(self.pending);
        if count == 0 {
            return;
        }
        self.pending -= count;
        self.out.inc_by(count);
        self.in_flight.sub(count as i64);
        // Prometheus compares it with its own time: always the machine's.
        self.last.set(crate::clock::SystemClock.now().timestamp());
    }

    /// Counts every item still pending out now.
    pub fn done_all(mut self) {
        let pending = self.pending;
        self.done(pending);
    }

    /// Takes over `other`'s pending items (work that goes on as one batch).
    pub fn absorb(&mut self, mut other: StageWork) {
        self.pending += other.pending;
        other.pending = 0;
    }
}

impl Drop for StageWork {
    fn drop(&mut self) {
        self.in_flight.sub(self.pending as i64);
    }
}

/// One more on `gauge` while this lives (an item held somewhere right now).
#[derive(Debug)]
pub struct Holding(IntGauge);

impl Holding {
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The ways an event comes into Herald, as the `door` label of `herald_events_received_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /v1/events` and `/v1/events/batch`, counted by ingest.
    Http,
    /// A provider's webhook, `POST /v1/hooks/{provider_id}`, counted by ingest.
    Hook,
    /// Published straight to `herald.events` by an outside program, counted by the matcher.
    Broker,
}

impl Door {
    pub const ALL: [Door; 3] = [Door::Http, Door::Hook, Door::Broker];

    pub fn as_str(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Hook => "hook",
            Door::Broker => "broker",
        }
    }
}

/// What became of an event offered to Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// New: stored, and on its way.
    Accepted,
    /// Seen before (same id or idempotency key): nothing new starts.
    Duplicate,
    /// Invalid: refused (over HTTP) or dead-lettered (from the broker).
    Rejected,
    /// Refused for now, over HTTP, while the backlog is past `ingest.max_backlog` (503
    /// `overloaded`): the sender tries again later.
    Deferred,
}

impl Received {
    pub const ALL: [Received; 4] = [
        Received::Accepted,
        Received::Duplicate,
        Received::Rejected,
        Received::Deferred,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Received::Accepted => "accepted",
            Received::Duplicate => "duplicate",
            Received::Rejected => "rejected",
            Received::Deferred => "deferred",
        }
    }
}

/// The `method` label of the HTTP metrics: the standard methods by name, anything else as
/// `other`, so that a client inventing methods cannot create series without bound.
pub fn http_method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
