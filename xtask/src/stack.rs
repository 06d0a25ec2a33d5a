//! A whole Herald cluster on this machine: the broker and database (local, under a folder of
//! ours, unless the environment points at existing ones) and the four service binaries as
//! child processes. Used by `cargo xtask up` and by the load harness.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::postgres::Postgres;
use crate::rabbitmq::{self, Rabbit};
use crate::{packages, ports};

/// The four services, in the order they are started (and the reverse of the order they stop).
pub const SERVICES: [&str; 4] = [
    "herald-scheduler",
    "herald-executor",
    "herald-matcher",
    "herald-ingest",
];

/// The loopback ports a local stack prefers; a taken one is replaced by a free one.
#[derive(Clone)]
pub struct PreferredPorts {
    pub amqp: u16,
    pub management: u16,
    pub postgres: u16,
    pub api: u16,
    /// The first ops port; each service replica takes the next.
    pub ops: u16,
}

impl Default for PreferredPorts {
    fn default() -> Self {
        Self {
            amqp: 5672,
            management: 15672,
            postgres: 5432,
            api: 8080,
            ops: 9090,
        }
    }
}

#[derive(Clone)]
pub struct StackOptions {
    /// Where the broker's and database's data and every log live.
    pub base: PathBuf,
    /// The folder holding the built service binaries.
    pub bin_dir: PathBuf,
    pub ports: PreferredPorts,
    /// Turn off fsync in the database (throwaway stacks only).
    pub fast_database: bool,
    /// Replicas of each service.
    pub replicas: BTreeMap<&'static str, usize>,
    /// Extra `HERALD_*` settings for every service.
    pub env: Vec<(String, String)>,
}

/// One service replica running as a child process.
pub struct ServiceChild {
    pub binary: &'static str,
    pub ops_port: u16,
    pub log: PathBuf,
    child: Child,
}

/// A running cluster. Dropping it stops everything, services first.
pub struct Stack {
    pub amqp_url: String,
    pub database_url: String,
    pub management_url: Option<String>,
    pub api_url: String,
    api_port: u16,
    pub admin_token: String,
    encryption_key: String,
    pub services: Vec<ServiceChild>,
    pub rabbit: Option<Rabbit>,
    pub postgres: Option<Postgres>,
}

fn default_ops_offset(binary: &str) -> u16 {
    match binary {
        "herald-ingest" => 0,
        "herald-matcher" => 1,
        "herald-executor" => 2,
        _ => 3,
    }
}

fn port_or_free(preferred: u16) -> anyhow::Result<u16> {
    if ports::in_use(preferred) {
        ports::free_port()
    } else {
        Ok(preferred)
    }
}

/// A secret of this stack: from `env` when set, else kept in the stack's folder (made once by
/// `make`) so that it survives restarts.
fn kept_secret(base: &Path, file: &str, env: &str, make: fn() -> String) -> anyhow::Result<String> {
    if let Ok(value) = std::env::var(env) {
        return Ok(value);
    }
    let path = base.join(file);
    if let Ok(value) = fs::read_to_string(&path) {
        return Ok(value.trim().to_owned());
    }
    let value = make();
    fs::write(&path, &value)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(value)
}

/// The admin token for this stack.
fn admin_token(base: &Path) -> anyhow::Result<String> {
    kept_secret(base, "admin-token", "HERALD_INGEST__ADMIN_TOKEN", || {
        herald_handlers::signing::generate_secret().replace("whsec_", "adm_")
    })
}

/// The key this stack's secrets are sealed with: lost, they could not be opened again.
fn encryption_key(base: &Path) -> anyhow::Result<String> {
    kept_secret(
        base,
        "encryption-key",
        "HERALD_SECURITY__ENCRYPTION_KEY",
        herald_common::crypto::generate_key,
    )
}

impl Stack {
    pub fn start(options: StackOptions) -> anyhow::Result<Self> {
        fs::create_dir_all(options.base.join("logs"))?;
        let outside_amqp = std::env::var("HERALD_AMQP__URL").ok();
        let outside_database = std::env::var("HERALD_DATABASE__URL").ok();
        if outside_amqp.is_none() || outside_database.is_none() {
            packages::ensure_installed()?;
        }
        let mut stack = Self {
            amqp_url: String::new(),
            database_url: String::new(),
            management_url: None,
            api_url: String::new(),
            api_port: 0,
            admin_token: admin_token(&options.base)?,
            encryption_key: encryption_key(&options.base)?,
            services: Vec::new(),
            rabbit: None,
            postgres: None,
        };
        match outside_amqp {
            Some(url) => stack.amqp_url = url,
            None => {
                eprintln!("==> starting RabbitMQ under {}", options.base.display());
                let spec = rabbitmq::spec(
                    &options.base,
                    "herald",
                    port_or_free(options.ports.amqp)?,
                    port_or_free(options.ports.management)?,
                )?;
                let started = std::time::Instant::now();
                let rabbit = Rabbit::start(spec).context("starting RabbitMQ")?;
                eprintln!("    RabbitMQ ready in {:.1?}", started.elapsed());
                stack.amqp_url = rabbit.spec.amqp_url();
                stack.management_url = Some(format!(
                    "http://127.0.0.1:{} (guest / guest)",
                    rabbit.spec.management_port
                ));
                stack.rabbit = Some(rabbit);
            }
        }
        match outside_database {
            Some(url) => stack.database_url = url,
            None => {
                eprintln!("==> starting PostgreSQL under {}", options.base.display());
                let started = std::time::Instant::now();
                let postgres = Postgres::start(
                    &options.base,
                    port_or_free(options.ports.postgres)?,
                    options.fast_database,
                )
                .context("starting PostgreSQL")?;
                eprintln!("    PostgreSQL ready in {:.1?}", started.elapsed());
                stack.database_url = postgres.url("herald");
                stack.postgres = Some(postgres);
            }
        }
        stack.migrate(&options)?;
        let api_port = port_or_free(options.ports.api)?;
        stack.api_url = format!("http://127.0.0.1:{api_port}");
        stack.api_port = api_port;
        for binary in SERVICES {
            let replicas = options.replicas.get(binary).copied().unwrap_or(1);
            for _ in 0..replicas {
                stack.spawn_replica(&options, binary)?;
            }
        }
        let started = std::time::Instant::now();
        eprintln!("==> starting the services");
        stack.wait_ready(Duration::from_secs(60))?;
        eprintln!("    services ready in {:.1?}", started.elapsed());
        Ok(stack)
    }

    /// Starts one more replica of `binary` (without waiting for it to be ready).
    pub fn spawn_replica(
        &mut self,
        options: &StackOptions,
        binary: &'static str,
    ) -> anyhow::Result<&ServiceChild> {
        let replica = self.services.iter().filter(|s| s.binary == binary).count();
        // The first replica gets the service's documented ops port (ingest 9090, matcher
        // 9091, executor 9092, scheduler 9093); others the next free ones.
        let mut ops_port = options.ports.ops + default_ops_offset(binary) + 10 * replica as u16;
        while ops_port == self.api_port
            || self.services.iter().any(|s| s.ops_port == ops_port)
            || ports::in_use(ops_port)
        {
            ops_port += 1;
        }
        let child = self.spawn(options, binary, replica, self.api_port, ops_port)?;
        self.services.push(child);
        Ok(self.services.last().expect("just pushed"))
    }

    /// Kills the first replica of `binary` with SIGKILL (no draining, as a crash) and starts a
    /// new one in its place (without waiting for it to be ready).
    pub fn kill_and_respawn(
        &mut self,
        options: &StackOptions,
        binary: &'static str,
    ) -> anyhow::Result<()> {
        let index = self
            .services
            .iter()
            .position(|s| s.binary == binary)
            .with_context(|| format!("no {binary} is running"))?;
        let mut killed = self.services.remove(index);
        let _ = killed.child.kill();
        let _ = killed.child.wait();
        self.spawn_replica(options, binary)?;
        Ok(())
    }

    /// Stops every replica of `binary` (SIGTERM, then waits for it to drain).
    pub fn stop_service(&mut self, binary: &str) {
        let (stopping, kept): (Vec<_>, Vec<_>) =
            self.services.drain(..).partition(|s| s.binary == binary);
        self.services = kept;
        for mut service in stopping {
            service.terminate();
        }
    }

    /// The settings every service gets, on top of the caller's.
    fn service_env(&self, options: &StackOptions) -> Vec<(String, String)> {
        let mut env = vec![
            ("HERALD_AMQP__URL".into(), self.amqp_url.clone()),
            ("HERALD_DATABASE__URL".into(), self.database_url.clone()),
            (
                "HERALD_INGEST__ADMIN_TOKEN".into(),
                self.admin_token.clone(),
            ),
            (
                "HERALD_SECURITY__ENCRYPTION_KEY".into(),
                self.encryption_key.clone(),
            ),
        ];
        env.extend(options.env.iter().cloned());
        env
    }

    fn migrate(&self, options: &StackOptions) -> anyhow::Result<()> {
        let binary = options.bin_dir.join("herald-ingest");
        let output = Command::new(&binary)
            .arg("migrate")
            .envs(self.service_env(options))
            .env("HERALD_TELEMETRY__LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} migrate", binary.display()))?;
        if !output.status.success() {
            bail!(
                "migrations failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn spawn(
        &self,
        options: &StackOptions,
        binary: &'static str,
        replica: usize,
        api_port: u16,
        ops_port: u16,
    ) -> anyhow::Result<ServiceChild> {
        let log = options
            .base
            .join("logs")
            .join(format!("{binary}-{replica}.log"));
        let file = fs::File::create(&log)?;
        let mut command = Command::new(options.bin_dir.join(binary));
        command
            .envs(self.service_env(options))
            .env("HERALD_OPS__LISTEN", format!("127.0.0.1:{ops_port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            // Its own process group: Ctrl-C reaches xtask alone, which stops things in order.
            .process_group(0);
        if binary == "herald-ingest" {
            command.env("HERALD_HTTP__LISTEN", format!("127.0.0.1:{api_port}"));
            // Further replicas of ingest listen on ports of their own.
            if replica > 0 {
                command.env("HERALD_HTTP__LISTEN", "127.0.0.1:0");
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        Ok(ServiceChild {
            binary,
            ops_port,
            log,
            child,
        })
    }

    pub fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        for service in &mut self.services {
            let url = format!("http://127.0.0.1:{}/readyz", service.ops_port);
            let mut exited = None;
            let ready = ports::wait_until(limit, || {
                if let Ok(Some(status)) = service.child.try_wait() {
                    exited = Some(status);
                    return true;
                }
                client
                    .get(&url)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            });
            if let Some(status) = exited {
                bail!(
                    "{} exited ({status}); its log: {}",
                    service.binary,
                    service.log.display()
                );
            }
            if !ready {
                bail!(
                    "{} did not become ready; its log: {}",
                    service.binary,
                    service.log.display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to every service (ingest first, so nothing new comes in), then waits for them to
    /// drain; then the broker and the database.
    pub fn stop(&mut self) {
        for service in self.services.iter().rev() {
            service.signal_terminate();
        }
        for service in self.services.iter_mut().rev() {
            service.wait_stopped();
        }
        self.services.clear();
        if let Some(mut rabbit) = self.rabbit.take() {
            rabbit.stop();
        }
        if let Some(mut postgres) = self.postgres.take() {
            postgres.stop();
        }
    }
}

impl ServiceChild {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal_terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits up to 30 s for a drained exit, then kills it.
    fn wait_stopped(&mut self) {
        let done = ports::wait_until(Duration::from_secs(30), || {
            self.child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        if !done {
            eprintln!("{} did not stop in time; killing it", self.binary);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        self.signal_terminate();
        self.wait_stopped();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}
