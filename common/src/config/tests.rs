//! Configuration: the layers' order, every documented variable, refusals naming the key, and secrets kept out of output.

use super::*;

/// The executor's configuration from `vars`.
fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load_from(ServiceName::Executor, None, vars.collect::<Vec<_>>())
}

#[test]
fn the_services_that_seal_need_a_key_to_serve_and_the_others_do_not() {
    let none = [("HERALD_SECURITY__ENCRYPTION_KEY".to_owned(), String::new())];
    for service in [ServiceName::Ingest, ServiceName::Executor] {
        let config = Config::load_from(service, None, none.clone()).expect("loads");
        let err = config.validate_for(service).unwrap_err();
        assert_eq!(err.key, "security.encryption_key", "{service:?}");
        let key = [(
            "HERALD_SECURITY__ENCRYPTION_KEY".to_owned(),
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_owned(),
        )];
        let config = Config::load_from(service, None, key).expect("loads");
        config.validate_for(service).expect("serves with a key");
    }
    for service in [ServiceName::Matcher, ServiceName::Scheduler] {
        let config = Config::load_from(service, None, none.clone()).expect("loads");
        config.validate_for(service).expect("needs none");
    }
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
        (
            "HERALD_SECURITY__ENCRYPTION_KEY",
            "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
            |c| c.security.encryption_key.clone(),
        ),
        (
            "HERALD_SECURITY__PREVIOUS_ENCRYPTION_KEYS",
            "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=",
            |c| c.security.previous_encryption_keys.join("|"),
        ),
        ("HERALD_EXECUTOR__SMTP__HOST", "smtp.example.com", |c| {
            c.executor.smtp.host.clone()
        }),
        ("HERALD_EXECUTOR__SMTP__PORT", "2525", |c| {
            c.executor.smtp.port.to_string()
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
            "HERALD_SECURITY__ENCRYPTION_KEY",
            "c2hvcnQ=",
            "security.encryption_key",
        ),
        (
            "HERALD_EXECUTOR__SMTP__SECURITY",
            "ssl",
            "executor.smtp.security",
        ),
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
    let err = Config::load_from(ServiceName::Matcher, Some(&path), []).unwrap_err();
    assert!(err.to_string().contains("prefech"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let config = load(&[("HERALD_AMQP__URL", "amqp://user:hunter2@broker/v")]).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
    assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
}
