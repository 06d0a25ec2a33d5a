//! Running a service binary as a child process, for tests that kill or signal it.

use std::process::Stdio;

use tokio::process::{Child, Command};

/// A service running as its own process; killed when dropped.
pub struct ServiceProcess {
    pub child: Child,
}

impl ServiceProcess {
    /// Starts `binary` (for example `herald-executor`) with `env` on top of a clean environment.
    pub fn spawn(binary: &str, env: &[(String, String)]) -> Self {
        let path = crate::env::bin_dir().join(binary);
        assert!(
            path.exists(),
            "{} is missing: build the binaries first (cargo xtask test does)",
            path.display()
        );
        let child = Command::new(&path)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        Self { child }
    }

    /// `kill -9`: no chance to drain or acknowledge anything.
    pub async fn kill_hard(&mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// SIGTERM, then waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running child") as i32;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.child.wait().await.expect("wait for child")
    }
}
