//! A PostgreSQL server run as a plain process under a folder of ours, on 127.0.0.1.
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::packages::{is_root, postgres_bin_dir};
use crate::ports;

/// A running server; stopped when dropped.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    running: bool,
}

/// A command for a PostgreSQL program, run as `postgres` when we are root.
fn pg_command(bin: &Path, program: &str) -> Command {
    let path = bin.join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

fn run(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `wanted`, unless the server's user (`postgres`, when we are root) cannot reach it because a
/// parent folder is private; then a folder under the system's temporary directory.
fn reachable_dir(wanted: PathBuf, port: u16) -> PathBuf {
    if !is_root() {
        return wanted;
    }
    let parent = wanted.parent().map(Path::to_path_buf).unwrap_or_default();
    let reachable = Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(&parent)
        .status()
        .is_ok_and(|s| s.success());
    if reachable {
        wanted
    } else {
        let fallback = std::env::temp_dir().join(format!("herald-postgres-{port}"));
        eprintln!(
            "    {} is private to root; keeping the database in {}",
            parent.display(),
            fallback.display()
        );
        fallback
    }
}

impl Postgres {
    /// Initialises (first time only) and starts a server under `base/postgres`. `fast` turns off
    /// fsync, for throwaway test databases only.
    pub fn start(base: &Path, port: u16, fast: bool) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir().context("PostgreSQL is not installed")?;
        if ports::in_use(port) {
            bail!(
                "port {port} on 127.0.0.1 is taken; stop what uses it or point \
                 HERALD_DATABASE__URL at an existing database"
            );
        }
        let dir = reachable_dir(base.join("postgres"), port);
        let data = dir.join("data");
        let socket = dir.join("run");
        fs::create_dir_all(&data)?;
        fs::create_dir_all(&socket)?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            )?;
        }
        if !data.join("PG_VERSION").exists() {
            let mut initdb = pg_command(&bin, "initdb");
            initdb.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ]);
            run(initdb, "initdb")?;
        }
        // Checkpoints every few GB of WAL rather than every 1 GB (the default): at ~10k events/s
        // the default checkpointed about every half minute, and each checkpoint's full-page
        // writes slowed every write after it (deliveries fell behind 45 s into a 60 s run).
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500 \
             -c shared_buffers=256MB -c max_wal_size=4GB -c checkpoint_timeout=15min",
            socket.display()
        );
        if fast {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut start = pg_command(&bin, "pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            // Its own process group, so a Ctrl-C meant for us does not stop the server early.
            .process_group(0);
        run(start, "pg_ctl start")?;
        let server = Self {
            dir,
            port,
            bin,
            running: true,
        };
        server.psql("postgres", "SELECT 1")?;
        let role_exists = server.psql(
            "postgres",
            "SELECT 1 FROM pg_roles WHERE rolname = 'herald'",
        )?;
        if role_exists.trim().is_empty() {
            server.psql("postgres", "CREATE ROLE herald LOGIN SUPERUSER")?;
        }
        let db_exists = server.psql(
            "postgres",
            "SELECT 1 FROM pg_database WHERE datname = 'herald'",
        )?;
        if db_exists.trim().is_empty() {
            server.psql("postgres", "CREATE DATABASE herald OWNER herald")?;
        }
        Ok(server)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://herald@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut command = Command::new("psql");
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        run(command, "psql")
    }

    /// Restarts the server: `immediate` stops it without a checkpoint, as a crash would (it
    /// recovers from its WAL at start), otherwise it shuts down cleanly first.
    pub fn restart(&mut self, immediate: bool) -> anyhow::Result<()> {
        let mut restart = pg_command(&self.bin, "pg_ctl");
        restart
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-m", if immediate { "immediate" } else { "fast" }])
            .args(["-w", "-t", "120", "restart"])
            .process_group(0);
        run(restart, "pg_ctl restart")?;
        Ok(())
    }

    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let mut stop = pg_command(&self.bin, "pg_ctl");
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        let _ = run(stop, "pg_ctl stop");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
