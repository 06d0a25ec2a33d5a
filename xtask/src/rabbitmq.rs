//! A RabbitMQ node run as a plain process under a folder of ours, bound to 127.0.0.1.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::packages::{RABBITMQ_SERVER, RABBITMQCTL};
use crate::ports;

/// Where and how a node runs.
#[derive(Debug, Clone)]
pub struct RabbitSpec {
    pub dir: PathBuf,
    pub node: String,
    pub amqp_port: u16,
    pub management_port: u16,
    pub dist_port: u16,
}

/// A running node; stopped when dropped.
pub struct Rabbit {
    pub spec: RabbitSpec,
    child: Option<Child>,
}

impl RabbitSpec {
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    pub fn management_url(&self) -> String {
        format!("http://guest:guest@127.0.0.1:{}", self.management_port)
    }

    /// The environment rabbitmq-server and rabbitmqctl need to find this node.
    pub fn env(&self) -> Vec<(String, String)> {
        let dir = self.dir.display().to_string();
        vec![
            ("RABBITMQ_NODENAME".into(), self.node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS".into(), "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT".into(), self.amqp_port.to_string()),
            ("RABBITMQ_DIST_PORT".into(), self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), format!("{dir}/mnesia")),
            ("RABBITMQ_LOG_BASE".into(), format!("{dir}/log")),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".into(),
                format!("{dir}/enabled_plugins"),
            ),
            ("RABBITMQ_CONFIG_FILE".into(), format!("{dir}/rabbitmq")),
            (
                "RABBITMQ_CONF_ENV_FILE".into(),
                format!("{dir}/rabbitmq-env.conf"),
            ),
            ("ERL_EPMD_ADDRESS".into(), "127.0.0.1".into()),
            ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".into(), erl_args()),
            ("HOME".into(), dir),
        ]
    }

    fn write_files(&self) -> anyhow::Result<()> {
        fs::create_dir_all(self.dir.join("mnesia"))?;
        fs::create_dir_all(self.dir.join("log"))?;
        fs::write(
            self.dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{}\n\
                 management.tcp.ip = 127.0.0.1\n\
                 management.tcp.port = {}\n\
                 log.file.level = warning\n\
                 log.console = false\n",
                self.amqp_port, self.management_port
            ),
        )?;
        // Management only: the Prometheus plugin would listen on 0.0.0.0:15692, a fixed port
        // that two stacks on one machine (a test run beside `cargo xtask up`) cannot share.
        fs::write(self.dir.join("enabled_plugins"), "[rabbitmq_management].\n")?;
        fs::write(
            self.dir.join("rabbitmq-env.conf"),
            "SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {127,0,0,1}\"\n",
        )?;
        Ok(())
    }

    /// Runs rabbitmqctl against this node.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(RABBITMQCTL)
            .args(["-n", &self.node])
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .context("running rabbitmqctl")?;
        if !output.status.success() {
            bail!(
                "rabbitmqctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// The Erlang runtime's arguments for local nodes: `XTASK_RABBITMQ_ERL_ARGS` when set (`""`
/// gives Erlang's defaults), else schedulers that do not busy-wait. They spin while idle by
/// default, which suits a host of its own; here the broker shares two cores with the database
/// and four services, and the spinning is CPU they need (RabbitMQ's runtime guide for shared
/// hosts). `bench latency` measures both.
pub fn erl_args() -> String {
    // Not `HERALD_…`: the services refuse settings they do not know, and inherit this.
    std::env::var("XTASK_RABBITMQ_ERL_ARGS")
        .unwrap_or_else(|_| "+sbwt none +sbwtdcpu none +sbwtdio none".into())
}

impl Rabbit {
    /// Starts the node and waits until it accepts connections.
    pub fn start(spec: RabbitSpec) -> anyhow::Result<Self> {
        for port in [spec.amqp_port, spec.management_port, spec.dist_port] {
            if ports::in_use(port) {
                bail!(
                    "port {port} on 127.0.0.1 is taken; stop what uses it or point \
                     HERALD_AMQP__URL at an existing broker"
                );
            }
        }
        spec.write_files()?;
        let log = fs::File::create(spec.dir.join("log/console.log"))?;
        let child = Command::new(RABBITMQ_SERVER)
            .envs(spec.env())
            // Crash dumps (erl_crash.dump, MnesiaCore.*) land in the node's folder, not in the
            // folder the command was run from.
            .current_dir(&spec.dir)
            .env("ERL_CRASH_DUMP", spec.dir.join("log/erl_crash.dump"))
            // Its own process group, so a Ctrl-C meant for us does not halt the broker first.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting rabbitmq-server")?;
        let mut rabbit = Self {
            spec,
            child: Some(child),
        };
        let up = ports::wait_until(Duration::from_secs(90), || {
            ports::in_use(rabbit.spec.amqp_port) || rabbit.exited()
        });
        if !up || rabbit.exited() {
            bail!(
                "RabbitMQ did not start; see {}",
                rabbit.spec.dir.join("log").display()
            );
        }
        // The AMQP port opens before every plugin is ready; await_startup waits for all.
        rabbit.spec.ctl(&["await_startup", "--timeout", "60"])?;
        Ok(rabbit)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().map(|s| s.is_some()).unwrap_or(true))
    }

    /// Kills the node with SIGKILL (the Erlang VM, not only the script that started it), as a
    /// crash, then starts it again on the same data and waits until it is up.
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        let marker = self.spec.dir.display().to_string();
        for pid in std::fs::read_dir("/proc")?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        {
            let cmdline =
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.contains("beam.smp") && cmdline.contains(&marker) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The listening socket goes when the VM has died.
        if !ports::wait_until(Duration::from_secs(30), || {
            !ports::in_use(self.spec.amqp_port)
        }) {
            bail!("the killed broker still holds port {}", self.spec.amqp_port);
        }
        let spec = self.spec.clone();
        *self = Self::start(spec)?;
        Ok(())
    }

    /// Stops the node and the epmd it started (when no other node still uses it).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = self.spec.ctl(&["shutdown"]);
        let stopped = ports::wait_until(Duration::from_secs(20), || {
            child.try_wait().map(|s| s.is_some()).unwrap_or(true)
        });
        if !stopped {
            let _ = child.kill();
        }
        let _ = child.wait();
        stop_idle_epmd();
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_idle_epmd() {
    let names = Command::new("epmd")
        .arg("-names")
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .output();
    if let Ok(output) = names {
        let text = String::from_utf8_lossy(&output.stdout);
        if !text.contains("name ") {
            let _ = Command::new("epmd").arg("-kill").output();
        }
    }
}

/// A node for a stack under `base` on the given ports.
pub fn spec(
    base: &Path,
    node: &str,
    amqp_port: u16,
    management_port: u16,
) -> anyhow::Result<RabbitSpec> {
    let dist_port = if amqp_port == 5672 {
        25672
    } else {
        ports::free_port()?
    };
    Ok(RabbitSpec {
        dir: base.join("rabbitmq"),
        node: format!("{node}@localhost"),
        amqp_port,
        management_port,
        dist_port,
    })
}
