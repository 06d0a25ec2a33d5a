//! One layered configuration for all four services.
//!
//! Sources, later ones winning: built-in defaults, an optional TOML file (`--config` or
//! `HERALD_CONFIG`), then environment variables `HERALD_<SECTION>__<KEY>` such as
//! `HERALD_AMQP__URL`. Unknown keys in a file are errors, every value is validated at start,
//! and a problem is reported as one line naming the key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Longest a `POST /v1/events` waits for the results of the sync actions it matched.
    pub sync_timeout_ms: u64,
    /// Requests per second one tenant may make to one ingest replica (a token bucket);
    /// 0 lifts the limit. Past it: 429 with `Retry-After`.
    pub tenant_rate_per_s: u32,
    /// Requests a tenant may send at once above its rate (the bucket's size).
    pub tenant_burst: u32,
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
    /// The built-in defaults: everything on loopback, matching the local stack's ports.
    pub fn defaults(service: ServiceName) -> Self {
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            http: HttpConfig {
                listen: loopback(8080),
            },
            ops: OpsConfig {
                listen: loopback(service.default_ops_port()),
            },
            amqp: AmqpConfig {
                url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                prefetch: 256,
                confirm_window: 1000,
                reconnect_initial_ms: 200,
                reconnect_max_ms: 5000,
            },
            database: DatabaseConfig {
                url: "postgres://herald@127.0.0.1:5432/herald".into(),
                max_connections: 10,
                acquire_timeout_ms: 5000,
                migrate_on_start: false,
            },
            telemetry: TelemetryConfig {
                log_format: LogFormat::Json,
                log_level: "info".into(),
                otlp_endpoint: String::new(),
            },
            ingest: IngestConfig {
                admin_token: String::new(),
                max_body_bytes: 1024 * 1024,
                max_batch_events: 500,
                max_metadata_entries: 64,
                max_metadata_bytes: 8 * 1024,
                max_json_depth: 64,
                batch_max_events: 256,
                batch_linger_us: 1000,
                wildcard_budget_per_tenant: 1000,
                sync_timeout_ms: 10_000,
                tenant_rate_per_s: 1000,
                tenant_burst: 2000,
            },
            matcher: MatcherConfig {
                batch_max_messages: 256,
                batch_linger_us: 1000,
                resync_interval_s: 60,
            },
            executor: ExecutorConfig {
                concurrency: 512,
                connect_timeout_ms: 5000,
                allow_private_destinations: Vec::new(),
                response_body_limit_bytes: 64 * 1024,
                lease_s: 300,
                per_destination_concurrency: 64,
                per_destination_queue: 20_000,
                per_destination_wait_ms: 5000,
                circuit_sync_ms: 250,
                circuit_consecutive_failures: 5,
                circuit_min_attempts: 10,
                circuit_failure_ratio: 0.5,
                circuit_window_s: 60,
                circuit_cooldown_ms: 5000,
                circuit_max_cooldown_s: 300,
                circuit_half_open_probes: 1,
            },
            scheduler: SchedulerConfig {
                poll_interval_ms: 100,
                batch_size: 500,
                release_workers: 2,
                claim_ttl_s: 30,
                recovery_interval_s: 10,
                overdue_after_s: 900,
                bulk_retry_page: 500,
            },
            retention: RetentionConfig {
                events_days: 30,
                executions_days: 30,
                attempts_days: 30,
                batch_size: 1000,
                interval_s: 60,
            },
            shutdown: ShutdownConfig { grace_s: 20 },
        }
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

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url(&self.amqp.url, "amqp.url", &["amqp", "amqps"])?;
        check_url(
            &self.database.url,
            "database.url",
            &["postgres", "postgresql"],
        )?;
        if !self.telemetry.otlp_endpoint.is_empty() {
            check_url(
                &self.telemetry.otlp_endpoint,
                "telemetry.otlp_endpoint",
                &["http", "https"],
            )?;
        }
        let positive = |key: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(key, "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        positive("amqp.prefetch", u64::from(self.amqp.prefetch))?;
        positive("amqp.confirm_window", self.amqp.confirm_window as u64)?;
        positive(
            "database.max_connections",
            u64::from(self.database.max_connections),
        )?;
        positive("ingest.max_body_bytes", self.ingest.max_body_bytes as u64)?;
        positive(
            "ingest.max_batch_events",
            self.ingest.max_batch_events as u64,
        )?;
        positive(
            "ingest.batch_max_events",
            self.ingest.batch_max_events as u64,
        )?;
        let max_depth = crate::json_bounds::MAX_CONFIGURABLE_DEPTH;
        if !(1..=max_depth).contains(&self.ingest.max_json_depth) {
            return Err(ConfigError::new(
                "ingest.max_json_depth",
                format!(
                    "must be from 1 to {max_depth} (stored JSON is read back inside envelopes \
                     that parsers bound at 128 levels)"
                ),
            ));
        }
        positive("ingest.sync_timeout_ms", self.ingest.sync_timeout_ms)?;
        if self.ingest.sync_timeout_ms > 60_000 {
            return Err(ConfigError::new(
                "ingest.sync_timeout_ms",
                "must be at most 60000 (a request should not wait longer than a minute)",
            ));
        }
        if self.ingest.tenant_rate_per_s > 0 && self.ingest.tenant_burst == 0 {
            return Err(ConfigError::new(
                "ingest.tenant_burst",
                "must be positive while ingest.tenant_rate_per_s is set",
            ));
        }
        positive(
            "matcher.batch_max_messages",
            self.matcher.batch_max_messages as u64,
        )?;
        positive("matcher.resync_interval_s", self.matcher.resync_interval_s)?;
        positive("executor.concurrency", self.executor.concurrency as u64)?;
        positive("executor.lease_s", self.executor.lease_s)?;
        let executor = &self.executor;
        for (key, value) in [
            (
                "executor.per_destination_concurrency",
                executor.per_destination_concurrency as u64,
            ),
            (
                "executor.per_destination_queue",
                executor.per_destination_queue as u64,
            ),
            (
                "executor.per_destination_wait_ms",
                executor.per_destination_wait_ms,
            ),
            ("executor.circuit_sync_ms", executor.circuit_sync_ms),
            (
                "executor.circuit_consecutive_failures",
                u64::from(executor.circuit_consecutive_failures),
            ),
            (
                "executor.circuit_min_attempts",
                u64::from(executor.circuit_min_attempts),
            ),
            ("executor.circuit_window_s", executor.circuit_window_s),
            ("executor.circuit_cooldown_ms", executor.circuit_cooldown_ms),
            (
                "executor.circuit_half_open_probes",
                u64::from(executor.circuit_half_open_probes),
            ),
        ] {
            positive(key, value)?;
        }
        if !(executor.circuit_failure_ratio > 0.0 && executor.circuit_failure_ratio <= 1.0) {
            return Err(ConfigError::new(
                "executor.circuit_failure_ratio",
                "must be above 0 and at most 1",
            ));
        }
        if executor.circuit_max_cooldown_s * 1000 < executor.circuit_cooldown_ms {
            return Err(ConfigError::new(
                "executor.circuit_max_cooldown_s",
                "must be at least executor.circuit_cooldown_ms",
            ));
        }
        positive(
            "scheduler.poll_interval_ms",
            self.scheduler.poll_interval_ms,
        )?;
        positive(
            "scheduler.batch_size",
            self.scheduler.batch_size.max(0) as u64,
        )?;
        positive("scheduler.claim_ttl_s", self.scheduler.claim_ttl_s)?;
        positive(
            "scheduler.release_workers",
            self.scheduler.release_workers as u64,
        )?;
        positive(
            "scheduler.recovery_interval_s",
            self.scheduler.recovery_interval_s,
        )?;
        positive("scheduler.overdue_after_s", self.scheduler.overdue_after_s)?;
        positive(
            "scheduler.bulk_retry_page",
            self.scheduler.bulk_retry_page.max(0) as u64,
        )?;
        positive(
            "retention.batch_size",
            self.retention.batch_size.max(0) as u64,
        )?;
        positive("retention.interval_s", self.retention.interval_s)?;
        if self.amqp.reconnect_max_ms < self.amqp.reconnect_initial_ms {
            return Err(ConfigError::new(
                "amqp.reconnect_max_ms",
                "must be at least amqp.reconnect_initial_ms",
            ));
        }
        let token = &self.ingest.admin_token;
        if !token.is_empty() && token.len() < 16 {
            return Err(ConfigError::new(
                "ingest.admin_token",
                "must be at least 16 characters",
            ));
        }
        for (i, entry) in self.executor.allow_private_destinations.iter().enumerate() {
            crate::net::AllowEntry::parse(entry).map_err(|problem| {
                ConfigError::new(format!("executor.allow_private_destinations[{i}]"), problem)
            })?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.telemetry.log_level)
            .map_err(|e| ConfigError::new("telemetry.log_level", e.to_string()))?;
        Ok(())
    }
}

fn check_url(text: &str, key: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let url = url::Url::parse(text).map_err(|e| {
        ConfigError::new(
            key,
            format!("is not a valid URL ({e}); expected {expected}..."),
        )
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::new(key, format!("must start with {expected}")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::new(key, "must name a host"));
    }
    Ok(())
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
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load_from(ServiceName::Executor, None, vars)
    }

    #[test]
    fn defaults_are_valid() {
        for service in [
            ServiceName::Ingest,
            ServiceName::Matcher,
            ServiceName::Executor,
            ServiceName::Scheduler,
        ] {
            Config::defaults(service).validate().unwrap();
        }
    }

    /// An environment variable, its value, and how to read the setting back.
    type OverrideCase = (&'static str, &'static str, fn(&Config) -> String);

    #[test]
    fn every_documented_variable_overrides_its_default() {
        let cases: &[OverrideCase] = &[
            ("HERALD_AMQP__URL", "amqp://u:p@broker:5672/v", |c| {
                c.amqp.url.clone()
            }),
            ("HERALD_AMQP__PREFETCH", "7", |c| {
                c.amqp.prefetch.to_string()
            }),
            ("HERALD_AMQP__CONFIRM_WINDOW", "9", |c| {
                c.amqp.confirm_window.to_string()
            }),
            ("HERALD_DATABASE__URL", "postgres://x@db/h", |c| {
                c.database.url.clone()
            }),
            ("HERALD_DATABASE__MAX_CONNECTIONS", "3", |c| {
                c.database.max_connections.to_string()
            }),
            ("HERALD_DATABASE__MIGRATE_ON_START", "true", |c| {
                c.database.migrate_on_start.to_string()
            }),
            ("HERALD_HTTP__LISTEN", "0.0.0.0:81", |c| {
                c.http.listen.to_string()
            }),
            ("HERALD_OPS__LISTEN", "0.0.0.0:82", |c| {
                c.ops.listen.to_string()
            }),
            ("HERALD_TELEMETRY__LOG_LEVEL", "debug", |c| {
                c.telemetry.log_level.clone()
            }),
            ("HERALD_TELEMETRY__LOG_FORMAT", "text", |c| {
                format!("{:?}", c.telemetry.log_format)
            }),
            ("HERALD_INGEST__ADMIN_TOKEN", "0123456789abcdef0", |c| {
                c.ingest.admin_token.clone()
            }),
            ("HERALD_INGEST__MAX_BODY_BYTES", "10", |c| {
                c.ingest.max_body_bytes.to_string()
            }),
            ("HERALD_INGEST__MAX_BATCH_EVENTS", "11", |c| {
                c.ingest.max_batch_events.to_string()
            }),
            ("HERALD_INGEST__MAX_JSON_DEPTH", "17", |c| {
                c.ingest.max_json_depth.to_string()
            }),
            ("HERALD_INGEST__BATCH_LINGER_US", "12", |c| {
                c.ingest.batch_linger_us.to_string()
            }),
            ("HERALD_INGEST__WILDCARD_BUDGET_PER_TENANT", "15", |c| {
                c.ingest.wildcard_budget_per_tenant.to_string()
            }),
            ("HERALD_MATCHER__BATCH_MAX_MESSAGES", "13", |c| {
                c.matcher.batch_max_messages.to_string()
            }),
            ("HERALD_EXECUTOR__CONCURRENCY", "14", |c| {
                c.executor.concurrency.to_string()
            }),
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS",
                "127.0.0.1/32,10.0.0.0/8",
                |c| c.executor.allow_private_destinations.join("|"),
            ),
            ("HERALD_SCHEDULER__POLL_INTERVAL_MS", "15", |c| {
                c.scheduler.poll_interval_ms.to_string()
            }),
            ("HERALD_SCHEDULER__CLAIM_TTL_S", "16", |c| {
                c.scheduler.claim_ttl_s.to_string()
            }),
            ("HERALD_SHUTDOWN__GRACE_S", "17", |c| {
                c.shutdown.grace_s.to_string()
            }),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318",
                |c| c.telemetry.otlp_endpoint.clone(),
            ),
        ];
        for (name, value, read) in cases {
            let config = load(&[(name, value)]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = value.replace(',', "|").replace("Text", "text");
            assert_eq!(
                read(&config).to_lowercase(),
                expected.to_lowercase(),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("HERALD_AMQP__URL", "nonsense", "amqp.url"),
            ("HERALD_AMQP__URL", "http://broker", "amqp.url"),
            ("HERALD_DATABASE__URL", "mysql://db", "database.url"),
            ("HERALD_AMQP__PREFETCH", "lots", "amqp.prefetch"),
            ("HERALD_AMQP__PREFETCH", "0", "amqp.prefetch"),
            ("HERALD_HTTP__LISTEN", "localhost", "http.listen"),
            ("HERALD_INGEST__ADMIN_TOKEN", "short", "ingest.admin_token"),
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS",
                "10.0.0.0/99",
                "executor.allow_private_destinations[0]",
            ),
            ("HERALD_TELEMETRY__LOG_LEVEL", "=[", "telemetry.log_level"),
            (
                "HERALD_INGEST__MAX_JSON_DEPTH",
                "0",
                "ingest.max_json_depth",
            ),
            (
                "HERALD_INGEST__MAX_JSON_DEPTH",
                "101",
                "ingest.max_json_depth",
            ),
        ];
        for (name, value, key) in cases {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.key, key, "{name}={value}: {err}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn a_file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("herald.toml");
        std::fs::write(&path, "[amqp]\nprefetch = 5\n[executor]\nconcurrency = 6\n").unwrap();
        let vars = [("HERALD_EXECUTOR__CONCURRENCY".to_string(), "7".to_string())];
        let config = Config::load_from(ServiceName::Executor, Some(&path), vars).unwrap();
        assert_eq!(config.amqp.prefetch, 5);
        assert_eq!(config.executor.concurrency, 7);

        std::fs::write(&path, "[amqp]\nprefech = 5\n").unwrap();
        let err = Config::load_from(ServiceName::Executor, Some(&path), []).unwrap_err();
        assert!(err.to_string().contains("prefech"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = load(&[("HERALD_AMQP__URL", "amqp://user:hunter2@broker/v")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
