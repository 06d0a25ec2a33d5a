//! One layered configuration for all four services.
//!
//! Sources, later ones winning: built-in defaults (`defaults.toml`, commented, compiled in),
//! an optional TOML file (`--config` or `HERALD_CONFIG`), then environment variables
//! `HERALD_<SECTION>__<KEY>` such as `HERALD_AMQP__URL`. Unknown keys in a file are errors, every value is validated at start,
//! and a problem is reported as one line naming the key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod reference;
mod validate;

pub use reference::reference_table;

/// Every setting with its default and its meaning: the first layer of the configuration.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// Which binary is loading the configuration; picks per-service defaults such as ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceName {
    Ingest,
    Matcher,
    Executor,
    Scheduler,
}

impl ServiceName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Matcher => "matcher",
            Self::Executor => "executor",
            Self::Scheduler => "scheduler",
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Self::Ingest => "herald-ingest",
            Self::Matcher => "herald-matcher",
            Self::Executor => "herald-executor",
            Self::Scheduler => "herald-scheduler",
        }
    }

    fn default_ops_port(self) -> u16 {
        match self {
            Self::Ingest => 9090,
            Self::Matcher => 9091,
            Self::Executor => 9092,
            Self::Scheduler => 9093,
        }
    }
}

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub ops: OpsConfig,
    pub amqp: AmqpConfig,
    pub database: DatabaseConfig,
    pub telemetry: TelemetryConfig,
    pub ingest: IngestConfig,
    pub matcher: MatcherConfig,
    pub executor: ExecutorConfig,
    pub scheduler: SchedulerConfig,
    pub retention: RetentionConfig,
    pub shutdown: ShutdownConfig,
    pub security: SecurityConfig,
}

/// Ingest's public API listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

/// The `/healthz`, `/readyz` and `/metrics` listener every service runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    pub listen: SocketAddr,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    pub url: String,
    /// Unacknowledged deliveries a consumer may hold (basic.qos).
    pub prefetch: u16,
    /// Publishes awaiting a broker confirm at once, per publisher.
    pub confirm_window: usize,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

impl std::fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &redact_url(&self.url))
            .field("prefetch", &self.prefetch)
            .field("confirm_window", &self.confirm_window)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when the service starts (otherwise run `<binary> migrate`).
    pub migrate_on_start: bool,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `herald=debug,lapin=warn`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// OTLP/HTTP endpoint for traces. Empty: no export. `OTEL_EXPORTER_OTLP_ENDPOINT` wins.
    pub otlp_endpoint: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Bearer token for the tenant and key management endpoints. Empty disables them.
    pub admin_token: String,
    pub max_body_bytes: usize,
    pub max_batch_events: usize,
    pub max_metadata_entries: usize,
    pub max_metadata_bytes: usize,
    /// Deepest nesting of arrays and objects in what is stored as JSON (an event's `data`, a
    /// delivery's `payload`), at every door; deeper is refused with 422 `json_too_deep`.
    pub max_json_depth: usize,
    /// Events gathered into one database write and one broker message.
    pub batch_max_events: usize,
    /// Longest an event waits for companions before its batch is flushed.
    pub batch_linger_us: u64,
    /// Wildcard event-type patterns plus regex conditions one tenant's actions may hold.
    pub wildcard_budget_per_tenant: usize,
    /// Most steps one workflow action may have (at most 64).
    pub max_workflow_steps: usize,
    /// Longest a `POST /v1/events` waits for the results of the sync actions it matched.
    pub sync_timeout_ms: u64,
    /// Requests per second one tenant may make to one ingest replica (a token bucket);
    /// 0 lifts the limit. Past it: 429 with `Retry-After`.
    pub tenant_rate_per_s: u32,
    /// Requests a tenant may send at once above its rate (the bucket's size).
    pub tenant_burst: u32,
    /// Events waiting for the matcher and the executor (ready messages × the mean events per
    /// message ingest publishes) past which new events are answered 503 `overloaded`
    /// (admission control); 0 turns it off.
    pub max_backlog: u64,
}

impl IngestConfig {
    /// The limits every door applies to an incoming event (ingest's, and the matcher's for
    /// events published straight to the broker).
    pub fn event_limits(&self) -> crate::event::EventLimits {
        crate::event::EventLimits {
            max_metadata_entries: self.max_metadata_entries,
            max_metadata_bytes: self.max_metadata_bytes,
            max_json_depth: self.max_json_depth,
        }
    }
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConfig")
            .field(
                "admin_token",
                &if self.admin_token.is_empty() {
                    "unset"
                } else {
                    "set"
                },
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherConfig {
    /// Deliveries matched and recorded together.
    pub batch_max_messages: usize,
    pub batch_linger_us: u64,
    /// Seconds between full reloads of the action set (a safety net under the change feed).
    pub resync_interval_s: u64,
    /// Jobs waiting for the executor (ready messages × the mean jobs per message the matcher
    /// publishes) past which no new batch of events is matched; 0 turns it off.
    pub max_backlog: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    /// Destinations allowed despite being private, loopback or link-local: CIDRs (`10.0.0.0/8`,
    /// `127.0.0.1/32`) or host names. Empty: only public addresses are reachable.
    #[serde(default)]
    pub allow_private_destinations: Vec<String>,
    pub response_body_limit_bytes: usize,
    /// How long an execution may sit in `processing` before recovery assumes its executor died.
    pub lease_s: u64,
    /// Attempts in flight at once to one destination (scheme, host, port) in this process: a
    /// slow or dead endpoint cannot take every slot.
    pub per_destination_concurrency: usize,
    /// Work waiting for one destination beyond which more is held back (rescheduled shortly
    /// without spending an attempt) instead of kept in memory.
    pub per_destination_queue: usize,
    /// Longest an attempt waits for its destination's slot before it is held back, in
    /// milliseconds: only a slow destination's work waits that long.
    pub per_destination_wait_ms: u64,
    /// How often circuit outcomes are written and circuit states read back, in milliseconds
    /// (a change is seen by every executor within about twice this).
    pub circuit_sync_ms: u64,
    /// A circuit opens after this many failures in a row...
    pub circuit_consecutive_failures: u32,
    /// ... or when at least `circuit_failure_ratio` of at least `circuit_min_attempts`
    /// attempts in `circuit_window_s` failed.
    pub circuit_min_attempts: u32,
    pub circuit_failure_ratio: f64,
    pub circuit_window_s: u64,
    /// Cool-down before the first probe, doubling with each trip up to the maximum.
    pub circuit_cooldown_ms: u64,
    pub circuit_max_cooldown_s: u64,
    /// Probes admitted at once while half-open.
    pub circuit_half_open_probes: u32,
    /// The default relay for email actions that name none.
    pub smtp: SmtpRelayConfig,
}

/// An SMTP relay: the default one in configuration, or an email action's own.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpRelayConfig {
    /// Empty: there is no default relay.
    pub host: String,
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SmtpRelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRelayConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    "unset"
                } else {
                    "set"
                },
            )
            .finish()
    }
}

/// The keys that seal what must not be readable at rest (see [`crate::crypto`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub encryption_key: String,
    #[serde(default)]
    pub previous_encryption_keys: Vec<String>,
}

impl SecurityConfig {
    pub fn key_ring(&self) -> crate::crypto::KeyRing {
        crate::crypto::KeyRing::new(&self.encryption_key, &self.previous_encryption_keys)
    }
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field(
                "encryption_key",
                &if self.encryption_key.is_empty() {
                    "unset"
                } else {
                    "set"
                },
            )
            .field(
                "previous_encryption_keys",
                &self.previous_encryption_keys.len(),
            )
            .finish()
    }
}

impl ExecutorConfig {
    pub fn circuit_policy(&self) -> crate::circuit::CircuitPolicy {
        crate::circuit::CircuitPolicy {
            window: Duration::from_secs(self.circuit_window_s),
            min_attempts: self.circuit_min_attempts,
            failure_ratio: self.circuit_failure_ratio,
            consecutive_failures: self.circuit_consecutive_failures,
            cooldown: Duration::from_millis(self.circuit_cooldown_ms),
            max_cooldown: Duration::from_secs(self.circuit_max_cooldown_s),
            half_open_probes: self.circuit_half_open_probes,
            probe_lease: Duration::from_secs(self.lease_s.min(60)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    pub poll_interval_ms: u64,
    pub batch_size: i64,
    /// Release loops per replica: while one waits for the broker's confirms, another takes
    /// the next batch.
    pub release_workers: usize,
    /// Longest a replica may hold a batch it has taken but not released: past it, the
    /// database gives the jobs back to the other replicas.
    pub claim_ttl_s: u64,
    /// How often the recovery loops look for stuck executions.
    pub recovery_interval_s: u64,
    /// How long past its time an attempt may wait, with no job for it at the scheduler,
    /// before recovery sends it again (its job was lost: a purged queue, a dead-lettered
    /// message). Generous, so that a long but healthy executor backlog is not sent twice.
    pub overdue_after_s: u64,
    /// Executions reopened per transaction by a bulk retry.
    pub bulk_retry_page: i64,
}

/// How long records are kept; 0 keeps them for ever. Deleting an execution deletes its
/// attempts; an event is deleted only once it has no executions left.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub events_days: u32,
    pub executions_days: u32,
    pub attempts_days: u32,
    /// Rows deleted per statement.
    pub batch_size: i64,
    /// How often the scheduler looks for expired rows.
    pub interval_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// Longest a service waits for in-flight work after SIGTERM.
    pub grace_s: u64,
}

impl ShutdownConfig {
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_s)
    }
}

impl Config {
    /// The built-in defaults (`defaults.toml`, compiled in): everything on loopback, with
    /// the local stack's ports.
    pub fn defaults(service: ServiceName) -> Self {
        let mut defaults: Self = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            // The file is compiled in and a test parses it: it cannot fail in a build.
            .unwrap_or_else(|error| panic!("defaults.toml does not parse: {error}"));
        defaults.ops.listen.set_port(service.default_ops_port());
        defaults
    }

    /// Loads defaults, then `file` (if any), then `HERALD_*` environment variables, and
    /// validates the result.
    pub fn load(service: ServiceName, file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(service, file, vars)
    }

    /// [`Self::load`] with an explicit environment, so tests need not touch the process's.
    pub fn load_from(
        service: ServiceName,
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let defaults = config::Config::try_from(&Self::defaults(service))
            .map_err(|e| ConfigError::new("defaults", e.to_string()))?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let mut env = std::collections::HashMap::new();
        let mut otel_endpoint = None;
        for (name, value) in vars {
            if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                otel_endpoint = Some(value);
            } else if name.starts_with("HERALD_") && name != "HERALD_CONFIG" {
                env.insert(name, value);
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("HERALD")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("executor.allow_private_destinations")
                .with_list_parse_key("security.previous_encryption_keys")
                .try_parsing(true)
                .source(Some(env.into_iter().collect())),
        );
        let merged = builder.build().map_err(from_config_error)?;
        let mut config: Config = merged.try_deserialize().map_err(from_config_error)?;
        if let Some(endpoint) = otel_endpoint {
            config.telemetry.otlp_endpoint = endpoint;
        }
        config.validate()?;
        Ok(config)
    }
}

/// Turns a `config` crate error into a key and a problem, without echoing values (which may be
/// secrets).
fn from_config_error(error: config::ConfigError) -> ConfigError {
    let text = error.to_string();
    // The crate formats errors as "<problem> for key `<key>` in <origin>".
    if let Some((problem, rest)) = text.split_once(" for key `") {
        let key = rest.split('`').next().unwrap_or_default();
        let problem = problem.split(": \"").next().unwrap_or(problem);
        return ConfigError::new(key, problem.replace("invalid type", "invalid value"));
    }
    if let Some(field) = text.strip_prefix("unknown field `") {
        let field = field.split('`').next().unwrap_or_default();
        return ConfigError::new(field, "is not a known setting");
    }
    ConfigError::new("config", text)
}

/// Hides the password in a URL for logs.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests;
