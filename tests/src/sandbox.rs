//! One test's private Herald: its own vhost, database and ports, with the services started
//! in-process by the same library calls the binaries use.

use std::time::Duration;

use herald_common::config::{Config, LogFormat, ServiceName};
use herald_common::service::Running;
use herald_common::store::Store;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::env;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The key the sandbox's secrets are sealed with (32 bytes of 0x42, in base64).
pub const ENCRYPTION_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
const TEMPLATE: &str = "herald_template";

/// Which services to run in-process.
#[derive(Debug, Clone, Copy)]
pub struct SandboxOptions {
    pub ingest: bool,
    pub matcher: bool,
    pub executor: bool,
    pub scheduler: bool,
    /// Changes to every service's configuration.
    pub configure: fn(&mut Config),
}

impl SandboxOptions {
    /// No services at all: for tests that run binaries themselves.
    pub fn none() -> Self {
        Self {
            ingest: false,
            matcher: false,
            executor: false,
            scheduler: false,
            ..Self::default()
        }
    }
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            ingest: true,
            matcher: true,
            executor: true,
            scheduler: true,
            configure: |_| {},
        }
    }
}

/// A broker and a database server other than the suite's shared ones, for tests that stop or
/// kill them (see `crate::servers`).
#[derive(Debug, Clone, Default)]
pub struct Servers {
    /// An AMQP URL whose vhost the sandbox uses as it is (no vhost is created).
    pub amqp_url: Option<String>,
    /// A database server's admin URL, on which the sandbox creates its database.
    pub database_url: Option<String>,
}

/// A tenant and its key.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub key: String,
}

pub struct Sandbox {
    pub name: String,
    pub amqp_url: String,
    pub database_url: String,
    pub api: Option<String>,
    pub http: reqwest::Client,
    pub store: Store,
    services: Vec<(ServiceName, Running)>,
    configure: fn(&mut Config),
}

fn init_tracing() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Creates the migrated template database once per test server (guarded by an advisory lock,
/// since test processes start in parallel).
async fn ensure_template(admin_url: &str) {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test database server");
    sqlx::query("SELECT pg_advisory_lock(7201)")
        .execute(&mut conn)
        .await
        .expect("lock");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(TEMPLATE)
        .fetch_optional(&mut conn)
        .await
        .expect("look for the template");
    if exists.is_none() {
        let staging = format!("{TEMPLATE}_staging");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {staging}"))
            .execute(&mut conn)
            .await
            .expect("drop staging");
        sqlx::query(&format!("CREATE DATABASE {staging}"))
            .execute(&mut conn)
            .await
            .expect("create staging");
        let staging_url = with_database(admin_url, &staging);
        let store = Store::connect(&db_config(&staging_url))
            .await
            .expect("connect to staging");
        store.migrate().await.expect("migrate the template");
        store.pool().close().await;
        // Backends of the closed pool, or an autovacuum worker drawn by the new tables, may
        // linger a moment; a rename needs the database to itself.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let others: Vec<(i32, Option<String>)> =
                sqlx::query_as("SELECT pid, backend_type FROM pg_stat_activity WHERE datname = $1")
                    .bind(&staging)
                    .fetch_all(&mut conn)
                    .await
                    .expect("list staging sessions");
            if others.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "staging database still in use by {others:?}"
            );
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&staging)
            .execute(&mut conn)
            .await
            .expect("end staging sessions");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Renamed only when complete, so no test ever copies a half-migrated template.
        sqlx::query(&format!("ALTER DATABASE {staging} RENAME TO {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .expect("publish the template");
    }
    sqlx::query("SELECT pg_advisory_unlock(7201)")
        .execute(&mut conn)
        .await
        .expect("unlock");
}

fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("database URL");
    parsed.set_path(database);
    parsed.to_string()
}

fn db_config(url: &str) -> herald_common::config::DatabaseConfig {
    let mut config = Config::defaults(ServiceName::Ingest).database;
    config.url = url.to_owned();
    config.max_connections = 5;
    config
}

/// The management API's base URL and credentials.
fn management() -> (String, String, String) {
    let management = url::Url::parse(&env::management_url()).expect("management URL");
    let user = management.username().to_owned();
    let password = management.password().unwrap_or("").to_owned();
    let host = management.host_str().unwrap_or("127.0.0.1");
    let base = format!("http://{host}:{}", management.port().unwrap_or(15672));
    (base, user, password)
}

async fn create_vhost(http: &reqwest::Client, vhost: &str) {
    let (base, user, password) = management();
    let encoded = urlencoding::encode(vhost);
    let created = http
        .put(format!("{base}/api/vhosts/{encoded}"))
        .basic_auth(&user, Some(&password))
        .json(&json!({}))
        .send()
        .await
        .expect("management API reachable");
    assert!(
        created.status().is_success(),
        "creating vhost: {}",
        created.status()
    );
    let granted = http
        .put(format!("{base}/api/permissions/{encoded}/{user}"))
        .basic_auth(&user, Some(&password))
        .json(&json!({"configure": ".*", "write": ".*", "read": ".*"}))
        .send()
        .await
        .expect("management API reachable");
    assert!(
        granted.status().is_success(),
        "granting vhost permissions: {}",
        granted.status()
    );
}

impl Sandbox {
    /// All four services in-process.
    pub async fn start() -> Self {
        Self::with(SandboxOptions::default()).await
    }

    pub async fn with(options: SandboxOptions) -> Self {
        Self::on(options, Servers::default()).await
    }

    /// Like [`Self::with`], on `servers` where given instead of the suite's shared ones.
    pub async fn on(options: SandboxOptions, servers: Servers) -> Self {
        init_tracing();
        let name = format!("t{}", uuid::Uuid::new_v4().simple());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client");
        if servers.amqp_url.is_none() {
            create_vhost(&http, &name).await;
        }
        let admin_url = servers.database_url.unwrap_or_else(env::database_url);
        ensure_template(&admin_url).await;
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect");
        sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let database_url = with_database(&admin_url, &name);
        let amqp = match servers.amqp_url {
            Some(url) => url::Url::parse(&url).expect("AMQP URL"),
            None => {
                let mut amqp = url::Url::parse(&env::amqp_url()).expect("AMQP URL");
                amqp.set_path(&format!("/{name}"));
                amqp
            }
        };
        let store = Store::connect(&db_config(&database_url))
            .await
            .expect("connect to the test database");
        let mut sandbox = Self {
            name,
            amqp_url: amqp.to_string(),
            database_url,
            api: None,
            http,
            store,
            services: Vec::new(),
            configure: options.configure,
        };
        let wanted = [
            (options.ingest, ServiceName::Ingest),
            (options.matcher, ServiceName::Matcher),
            (options.executor, ServiceName::Executor),
            (options.scheduler, ServiceName::Scheduler),
        ];
        for (on, service) in wanted {
            if on {
                sandbox.start_service(service).await;
            }
        }
        sandbox
    }

    /// The configuration a service of this sandbox runs with.
    pub fn config(&self, service: ServiceName) -> Config {
        let mut config = Config::defaults(service);
        config.amqp.url = self.amqp_url.clone();
        config.database.url = self.database_url.clone();
        config.database.max_connections = 5;
        config.http.listen = "127.0.0.1:0".parse().expect("addr");
        config.ops.listen = "127.0.0.1:0".parse().expect("addr");
        config.ingest.admin_token = ADMIN_TOKEN.into();
        config.security.encryption_key = ENCRYPTION_KEY.into();
        config.executor.allow_private_destinations = vec!["127.0.0.1/32".into()];
        config.telemetry.log_format = LogFormat::Text;
        config.shutdown.grace_s = 5;
        config.scheduler.poll_interval_ms = 50;
        (self.configure)(&mut config);
        config
    }

    /// The same configuration as environment variables, for a service run as a child process.
    pub fn env(&self) -> Vec<(String, String)> {
        let vars = [
            ("HERALD_AMQP__URL", self.amqp_url.clone()),
            ("HERALD_DATABASE__URL", self.database_url.clone()),
            ("HERALD_DATABASE__MAX_CONNECTIONS", "5".into()),
            ("HERALD_HTTP__LISTEN", "127.0.0.1:0".into()),
            ("HERALD_OPS__LISTEN", "127.0.0.1:0".into()),
            ("HERALD_INGEST__ADMIN_TOKEN", ADMIN_TOKEN.into()),
            ("HERALD_SECURITY__ENCRYPTION_KEY", ENCRYPTION_KEY.into()),
            (
                "HERALD_EXECUTOR__ALLOW_PRIVATE_DESTINATIONS",
                "127.0.0.1/32".into(),
            ),
            ("HERALD_TELEMETRY__LOG_LEVEL", "warn".into()),
            ("HERALD_SHUTDOWN__GRACE_S", "5".into()),
        ];
        vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Starts one more replica of `service` in-process.
    pub async fn start_service(&mut self, service: ServiceName) {
        let config = self.config(service);
        let token = CancellationToken::new();
        let running = match service {
            ServiceName::Ingest => herald_ingest::start(config, token).await,
            ServiceName::Matcher => herald_matcher::start(config, token).await,
            ServiceName::Executor => herald_executor::start(config, token).await,
            ServiceName::Scheduler => herald_scheduler::start(config, token).await,
        }
        .unwrap_or_else(|e| panic!("starting {}: {e:#}", service.binary()));
        if let Some(addr) = running.api_addr {
            self.api = Some(format!("http://{addr}"));
        }
        self.wait_ready(&running).await;
        self.services.push((service, running));
    }

    /// Starts one more scheduler in-process on `clock`, so that the test decides what time it is.
    pub async fn start_scheduler_on(&mut self, clock: herald_common::clock::ManualClock) {
        let config = self.config(ServiceName::Scheduler);
        let running = herald_scheduler::start_with_clock(config, CancellationToken::new(), clock)
            .await
            .unwrap_or_else(|e| panic!("starting herald-scheduler: {e:#}"));
        self.wait_ready(&running).await;
        self.services.push((ServiceName::Scheduler, running));
    }

    async fn wait_ready(&self, running: &Running) {
        let url = format!("http://{}/readyz", running.ops_addr);
        let http = self.http.clone();
        crate::eventually("the service to be ready", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    /// Changes how services started from now on are configured (those running keep theirs).
    pub fn reconfigure(&mut self, configure: fn(&mut Config)) {
        self.configure = configure;
    }

    /// Stops every in-process replica of `service` and waits for them to drain.
    pub async fn stop_service(&mut self, service: ServiceName) {
        let (stopping, kept): (Vec<_>, Vec<_>) =
            self.services.drain(..).partition(|(s, _)| *s == service);
        self.services = kept;
        for (_, running) in stopping {
            running.stop().await;
        }
    }

    /// The ops addresses (`/metrics`, `/readyz`) of every in-process replica of `service`.
    pub fn ops_addrs(&self, service: ServiceName) -> Vec<std::net::SocketAddr> {
        self.services
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, r)| r.ops_addr)
            .collect()
    }

    /// A metric's value as `/metrics` at `ops` shows it (the first series with that name).
    pub async fn metric(&self, ops: std::net::SocketAddr, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("http://{ops}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    /// A request to ingest with a bearer token, for tests that need headers of their own.
    pub fn http_request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api_url(path))
            .bearer_auth(token)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.api
                .as_deref()
                .expect("ingest is not running in this sandbox")
        )
    }

    /// Sends a request to ingest and returns the status and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.api_url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request).await
    }

    /// Sends a request made by hand and returns the status and the body as JSON, or as a
    /// string when it is not JSON (CSV).
    pub async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("ingest reachable");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A service's Prometheus text, from its ops address.
    pub async fn metrics_text(&self, ops: std::net::SocketAddr) -> String {
        self.http
            .get(format!("http://{ops}/metrics"))
            .send()
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn admin_token(&self) -> &'static str {
        ADMIN_TOKEN
    }

    /// A new tenant with a key.
    pub async fn tenant(&self) -> TestTenant {
        let (status, tenant) = self
            .call(
                reqwest::Method::POST,
                "/v1/tenants",
                Some(ADMIN_TOKEN),
                Some(json!({"name": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{tenant}");
        let id = tenant["id"].as_str().expect("tenant id").to_owned();
        let (status, key) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/tenants/{id}/keys"),
                Some(ADMIN_TOKEN),
                None,
            )
            .await;
        assert_eq!(status, 201, "{key}");
        TestTenant {
            id,
            key: key["key"].as_str().expect("key").to_owned(),
        }
    }

    /// Asks to create an action; returns the status and body, whatever they are.
    pub async fn try_action(&self, tenant: &TestTenant, spec: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/v1/actions",
            Some(&tenant.key),
            Some(spec),
        )
        .await
    }

    /// Creates an action and returns its JSON.
    pub async fn action(&self, tenant: &TestTenant, spec: Value) -> Value {
        let (status, action) = self.try_action(tenant, spec).await;
        assert_eq!(status, 201, "{action}");
        action
    }

    /// Stores tenant secret `name`; answers 201 (created) or 200 (replaced).
    pub async fn put_secret(&self, tenant: &TestTenant, name: &str, value: &str) -> u16 {
        let (status, answer) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/secrets/{name}"),
                Some(&tenant.key),
                Some(serde_json::json!({"value": value})),
            )
            .await;
        assert!(status == 201 || status == 200, "{answer}");
        status
    }

    /// Sends an event and returns its id.
    pub async fn event(&self, tenant: &TestTenant, event: Value) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/events",
                Some(&tenant.key),
                Some(event),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().expect("event id").to_owned()
    }

    /// The event with its executions, as the API shows it.
    pub async fn event_view(&self, tenant: &TestTenant, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/events/{}", urlencoding::encode(id)),
                Some(&tenant.key),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Retries, with `key`, every execution `filter` selects (`POST /v1/executions/retry`),
    /// waits until the scheduler has gone through them, and returns the finished bulk retry.
    pub async fn bulk_retry_to_the_end(&self, key: &str, filter: Value) -> Value {
        let (status, bulk) = self
            .call(
                reqwest::Method::POST,
                "/v1/executions/retry",
                Some(key),
                Some(filter),
            )
            .await;
        assert_eq!(status, 202, "{bulk}");
        let path = format!("/v1/bulk-retries/{}", bulk["id"].as_str().expect("id"));
        crate::eventually(
            "the bulk retry to finish",
            Duration::from_secs(30),
            || async {
                let (_, bulk) = self
                    .call(reqwest::Method::GET, &path, Some(key), None)
                    .await;
                (bulk["status"] == "done").then_some(bulk)
            },
        )
        .await
    }

    /// Waits until every execution of the event has reached a terminal status, and returns them.
    pub async fn terminal_executions(
        &self,
        tenant: &TestTenant,
        event_id: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        crate::eventually_showing("executions to finish", timeout, || async {
            let event = self.event_view(tenant, event_id).await;
            let executions = event["executions"].as_array().cloned().unwrap_or_default();
            let done = executions
                .iter()
                .filter(|e| {
                    matches!(
                        e["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    )
                })
                .count();
            if executions.len() == expected && done == expected {
                Ok(executions)
            } else {
                Err(event)
            }
        })
        .await
    }

    /// An execution with its attempts.
    pub async fn execution(&self, tenant: &TestTenant, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/executions/{id}"),
                Some(&tenant.key),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A plain channel on this sandbox's vhost, for tests that publish or read raw messages.
    pub async fn broker(&self) -> lapin::Channel {
        let connection =
            lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("connect to the test broker");
        let channel = connection.create_channel().await.expect("open a channel");
        // The channel keeps its connection alive; a test's channel lives as long as the test.
        std::mem::forget(connection);
        channel
    }

    /// Sets which resources of this sandbox's vhost may be written (published to, bound):
    /// a regular expression, as RabbitMQ's permissions take. The broker checks it on new
    /// channels; drop the connections to apply it at once.
    pub async fn set_broker_write_permission(&self, pattern: &str) {
        let (base, user, password) = management();
        let granted = self
            .http
            .put(format!(
                "{base}/api/permissions/{}/{user}",
                urlencoding::encode(&self.name)
            ))
            .basic_auth(&user, Some(&password))
            .json(&json!({"configure": ".*", "write": pattern, "read": ".*"}))
            .send()
            .await
            .expect("management API reachable");
        assert!(
            granted.status().is_success(),
            "setting permissions: {}",
            granted.status()
        );
    }

    /// Has the broker close every connection to this sandbox's vhost, as a broker restart or a
    /// network fault would, without touching other tests' vhosts. Waits until the broker lists
    /// `at_least` of them, and returns how many it closed.
    pub async fn drop_broker_connections(&self, at_least: usize) -> usize {
        let (base, user, password) = management();
        let url = format!(
            "{base}/api/vhosts/{}/connections",
            urlencoding::encode(&self.name)
        );
        // The management API lists connections from statistics gathered every few seconds.
        let listed: Vec<Value> = crate::eventually(
            "the broker to list the connections",
            Duration::from_secs(30),
            || async {
                let listed: Vec<Value> = self
                    .http
                    .get(&url)
                    .basic_auth(&user, Some(&password))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (listed.len() >= at_least).then_some(listed)
            },
        )
        .await;
        for connection in &listed {
            let name = connection["name"].as_str().expect("connection name");
            let closed = self
                .http
                .delete(format!(
                    "{base}/api/connections/{}",
                    urlencoding::encode(name)
                ))
                .basic_auth(&user, Some(&password))
                .header("x-reason", "test: simulated broker fault")
                .send()
                .await
                .expect("management API reachable");
            assert!(
                closed.status().is_success() || closed.status() == 404,
                "closing {name}: {}",
                closed.status()
            );
        }
        listed.len()
    }

    /// Waits for the next message in `queue` and acknowledges it.
    pub async fn next_message(
        &self,
        channel: &lapin::Channel,
        queue: &str,
        timeout: Duration,
    ) -> lapin::message::BasicGetMessage {
        crate::eventually(&format!("a message in {queue}"), timeout, || async {
            channel
                .basic_get(
                    queue.into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get")
        })
        .await
    }

    /// Stops every service and waits for each to drain.
    pub async fn stop(mut self) {
        for (_, running) in self.services.drain(..) {
            running.stop().await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The test server is thrown away after the run; stopping services is all that matters.
        for (_, running) in &self.services {
            running.shutdown.cancel();
        }
    }
}
