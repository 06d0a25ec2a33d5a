//! Checking a loaded configuration: every value within its bounds, and the settings that
//! depend on each other consistent, each problem named by its key.

use super::{Config, ConfigError, ServiceName};
use crate::crypto::decode_key;

impl Config {
    /// What one service needs beyond [`Config::validate`]: the services that seal and open
    /// secrets (ingest, the executor) refuse to start without a key.
    pub fn validate_for(&self, service: ServiceName) -> Result<(), ConfigError> {
        if matches!(service, ServiceName::Ingest | ServiceName::Executor)
            && self.security.encryption_key.is_empty()
        {
            return Err(ConfigError::new(
                "security.encryption_key",
                "must be set: 32 random bytes in base64 (openssl rand -base64 32)",
            ));
        }
        Ok(())
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key_ok = |text: &str| text.is_empty() || decode_key(text).is_some();
        if !key_ok(&self.security.encryption_key) {
            return Err(ConfigError::new(
                "security.encryption_key",
                "must be 32 bytes in base64 (openssl rand -base64 32)",
            ));
        }
        for (i, key) in self.security.previous_encryption_keys.iter().enumerate() {
            if key.is_empty() || !key_ok(key) {
                return Err(ConfigError::new(
                    format!("security.previous_encryption_keys[{i}]"),
                    "must be 32 bytes in base64",
                ));
            }
        }
        if !["starttls", "tls", "none"].contains(&self.executor.smtp.security.as_str()) {
            return Err(ConfigError::new(
                "executor.smtp.security",
                "must be starttls, tls or none",
            ));
        }
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
        if !(1..=64).contains(&self.ingest.max_workflow_steps) {
            return Err(ConfigError::new(
                "ingest.max_workflow_steps",
                "must be from 1 to 64",
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
