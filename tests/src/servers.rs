//! A broker and a database server of a test's own, run as plain processes in a temporary
//! folder on free loopback ports (as `cargo xtask test` runs the shared ones), for fault tests
//! that stop, restart or kill them: the suite's shared servers serve every other test at the
//! same time and must stay up.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// Where Debian's RabbitMQ puts its programs.
const RABBITMQ_DIRS: [&str; 2] = ["/usr/lib/rabbitmq/bin", "/usr/sbin"];
/// How long a server may take to come up.
const STARTUP: Duration = Duration::from_secs(90);

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

async fn listening(port: u16) -> bool {
    tokio::time::timeout(
        Duration::from_millis(200),
        tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
    )
    .await
    .is_ok_and(|c| c.is_ok())
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs `command`, panicking with its error output if it fails.
async fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `kill -9 <pid>`; a process already gone is no error.
fn kill_hard(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A RabbitMQ node of the test's own. Killed and its folder removed when dropped.
pub struct PrivateRabbit {
    dir: PathBuf,
    bin: PathBuf,
    node: String,
    amqp_port: u16,
    dist_port: u16,
    /// The `rabbitmq-server` script, which runs the Erlang VM as its child.
    server: Option<Child>,
    /// The Erlang VM's process id.
    vm: Option<u32>,
}

impl PrivateRabbit {
    /// Starts a node (no plugins) and waits until it has booted.
    pub async fn start() -> Self {
        let bin = RABBITMQ_DIRS
            .iter()
            .map(Path::new)
            .find(|dir| dir.join("rabbitmq-server").exists() && dir.join("rabbitmqctl").exists())
            .unwrap_or_else(|| {
                panic!(
                    "rabbitmq-server is not installed (looked in {RABBITMQ_DIRS:?}): \
                     `cargo xtask test` installs it"
                )
            })
            .to_owned();
        let dir = scratch_dir("rabbitmq");
        let rabbit = Self {
            node: format!(
                "faults-{}@localhost",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            amqp_port: free_port(),
            dist_port: free_port(),
            dir,
            bin,
            server: None,
            vm: None,
        };
        std::fs::create_dir_all(rabbit.dir.join("mnesia")).expect("mnesia folder");
        std::fs::create_dir_all(rabbit.dir.join("log")).expect("log folder");
        std::fs::write(
            rabbit.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\nlog.file.level = warning\n\
                 log.console = false\n",
                rabbit.amqp_port
            ),
        )
        .expect("rabbitmq.conf");
        std::fs::write(rabbit.dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        std::fs::write(
            rabbit.dir.join("rabbitmq-env.conf"),
            "SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
        )
        .expect("rabbitmq-env.conf");
        let mut rabbit = rabbit;
        rabbit.launch().await;
        rabbit
    }

    /// The default vhost of this node.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    fn env(&self) -> Vec<(String, String)> {
        let dir = self.dir.display().to_string();
        [
            ("RABBITMQ_NODENAME", self.node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", self.amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{dir}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{dir}/log")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{dir}/enabled_plugins"),
            ),
            ("RABBITMQ_CONFIG_FILE", format!("{dir}/rabbitmq")),
            ("RABBITMQ_CONF_ENV_FILE", format!("{dir}/rabbitmq-env.conf")),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("HOME", dir),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Runs rabbitmqctl against this node and returns its output.
    pub async fn ctl(&self, args: &[&str]) -> String {
        run(
            Command::new(self.bin.join("rabbitmqctl"))
                .args(["-n", &self.node])
                .args(args)
                .envs(self.env()),
            &format!("rabbitmqctl {}", args.join(" ")),
        )
        .await
    }

    async fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log/console.log"))
            .expect("console log");
        let server = Command::new(self.bin.join("rabbitmq-server"))
            .envs(self.env())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("console log"))
            .stderr(log)
            .spawn()
            .expect("start rabbitmq-server");
        self.server = Some(server);
        let deadline = tokio::time::Instant::now() + STARTUP;
        while !listening(self.amqp_port).await {
            let exited = self
                .server
                .as_mut()
                .is_none_or(|s| s.try_wait().map(|e| e.is_some()).unwrap_or(true));
            assert!(
                !exited && tokio::time::Instant::now() < deadline,
                "RabbitMQ did not start; see {}",
                self.dir.join("log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.ctl(&["await_startup", "--timeout", "60"]).await;
        let pid = self.ctl(&["eval", "os:getpid()."]).await;
        self.vm = Some(
            pid.trim()
                .trim_matches('"')
                .parse()
                .unwrap_or_else(|_| panic!("the node's process id: {pid}")),
        );
    }

    /// `rabbitmqctl stop_app`: the node stays up, the broker application (and every
    /// connection) goes.
    pub async fn stop_app(&self) {
        self.ctl(&["stop_app"]).await;
    }

    /// `rabbitmqctl start_app`, then waits for the broker to have booted.
    pub async fn start_app(&self) {
        self.ctl(&["start_app"]).await;
        self.ctl(&["await_startup", "--timeout", "60"]).await;
    }

    /// `kill -9` of the Erlang VM: no chance to close anything.
    pub async fn kill_hard(&mut self) {
        if let Some(vm) = self.vm.take() {
            kill_hard(vm);
        }
        if let Some(mut server) = self.server.take() {
            server.wait().await.expect("wait for rabbitmq-server");
        }
    }

    /// Starts the node again on the same data and ports.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "the node is still running");
        self.launch().await;
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(vm) = self.vm.take() {
            kill_hard(vm);
        }
        if let Some(server) = self.server.as_mut() {
            let _ = server.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server of the test's own (as the `postgres` user when the tests run as root,
/// since PostgreSQL refuses root). Stopped and its folder removed when dropped.
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Initialises and starts a server.
    pub async fn start() -> Self {
        let root = Path::new("/usr/lib/postgresql");
        let mut versions: Vec<u32> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|v: &u32| root.join(v.to_string()).join("bin/postgres").exists())
            .collect();
        versions.sort_unstable();
        let bin = versions
            .last()
            .map(|v| root.join(v.to_string()).join("bin"))
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL is not installed (no {}/*/bin/postgres): `cargo xtask test` \
                     installs it",
                    root.display()
                )
            });
        let server = Self {
            dir: scratch_dir("postgres"),
            bin,
            port: free_port(),
            as_postgres: is_root(),
        };
        std::fs::create_dir_all(server.dir.join("run")).expect("socket folder");
        if server.as_postgres {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&server.dir),
                "chown",
            )
            .await;
        }
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(server.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        run(&mut initdb, "initdb").await;
        server.start_again().await;
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// The URL of the server's `postgres` database, as its superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same data and port.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.dir.join("run").display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .process_group(0);
        let output = start
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run pg_ctl start");
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            panic!(
                "pg_ctl start failed ({}); the server's log ends with:\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server shuts down cleanly.
    pub async fn stop_fast(&self) {
        let mut stop = self.command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"]);
        run(&mut stop, "pg_ctl stop").await;
    }

    /// `kill -9` of the postmaster, then waits until its other processes, which notice their
    /// parent's death on their own, are gone too (a new server cannot start beside them).
    pub async fn kill_hard(&self) {
        let pid_file =
            std::fs::read_to_string(self.data().join("postmaster.pid")).expect("postmaster.pid");
        let postmaster: u32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("the postmaster's pid");
        kill_hard(postmaster);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "PostgreSQL's processes {left:?} outlived their postmaster"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A postmaster not yet reaped (a zombie) still looks alive to the next one's check of
        // its lock files; what a reaping init would soon make true, the test does at once.
        std::fs::remove_file(self.data().join("postmaster.pid")).expect("remove the lock file");
        let socket_lock = self
            .dir
            .join("run")
            .join(format!(".s.PGSQL.{}.lock", self.port));
        std::fs::remove_file(socket_lock).expect("remove the socket's lock file");
    }

    /// The server's live processes: every process of PostgreSQL works in its data folder.
    fn processes(&self) -> Vec<u32> {
        let data = self.data();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data)
                    && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                        stat.rsplit_once(')')
                            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
                    })
            })
            .collect()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let mut stop = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        let _ = stop
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
