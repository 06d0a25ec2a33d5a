//! Faults for `bench load --fault WHAT@SECOND`: the longer variants of the fault tests in
//! `tests/it/faults.rs`, injected into a run under real load. The run's own accounting (lost,
//! duplicates, time to drain) says what each one cost. Only what the fault itself stopped is
//! started again, as a supervisor (Kubernetes, systemd) would; nothing else is touched.

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::stack::{Stack, StackOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL one replica of a service, then start a new one.
    Kill(&'static str),
    /// `rabbitmqctl stop_app`, 5 s down, then `start_app`.
    BrokerRestart,
    /// SIGKILL the broker's Erlang VM, then start it again.
    BrokerKill,
    /// `pg_ctl restart -m fast`.
    DatabaseRestart,
    /// `pg_ctl restart -m immediate`: a crash, recovered from the WAL.
    DatabaseKill,
}

const NAMES: [(&str, FaultKind); 8] = [
    ("kill-ingest", FaultKind::Kill("herald-ingest")),
    ("kill-matcher", FaultKind::Kill("herald-matcher")),
    ("kill-executor", FaultKind::Kill("herald-executor")),
    ("kill-scheduler", FaultKind::Kill("herald-scheduler")),
    ("broker-restart", FaultKind::BrokerRestart),
    ("broker-kill", FaultKind::BrokerKill),
    ("db-restart", FaultKind::DatabaseRestart),
    ("db-kill", FaultKind::DatabaseKill),
];

/// One fault and the second of the load (after the warm-up began) it happens at.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    pub at_s: u32,
}

impl Fault {
    fn name(&self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, kind)| *kind == self.kind)
            .map_or("?", |(name, _)| name)
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (what, at) = text
            .split_once('@')
            .ok_or("expected WHAT@SECOND, for example kill-executor@20")?;
        let at_s = at
            .parse()
            .map_err(|_| format!("{at:?} is not a whole number of seconds"))?;
        let kind = NAMES
            .iter()
            .find(|(name, _)| *name == what)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                let known: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
                format!("unknown fault {what:?}; one of {}", known.join(", "))
            })?;
        Ok(Self { kind, at_s })
    }
}

/// Injects each fault at its second after `start` (in time order) and reports what happened.
pub fn inject_all(
    stack: &Mutex<Stack>,
    options: &StackOptions,
    faults: &[Fault],
    start: Instant,
) -> Vec<Value> {
    let mut faults = faults.to_vec();
    faults.sort_by_key(|f| f.at_s);
    let mut report = Vec::with_capacity(faults.len());
    for fault in &faults {
        let due = start + Duration::from_secs(u64::from(fault.at_s));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let began = Instant::now();
        let result = inject(stack, options, fault.kind);
        let took_s = began.elapsed().as_secs_f64();
        let error = result.err().map(|e| format!("{e:#}"));
        eprintln!(
            "==> fault {} at {} s: {} after {took_s:.1} s",
            fault.name(),
            fault.at_s,
            error.as_deref().unwrap_or("back up")
        );
        report.push(json!({"fault": fault.name(), "at_s": fault.at_s,
                           "took_s": took_s, "error": error}));
    }
    report
}

fn inject(stack: &Mutex<Stack>, options: &StackOptions, kind: FaultKind) -> anyhow::Result<()> {
    match kind {
        FaultKind::Kill(binary) => locked(stack).kill_and_respawn(options, binary),
        FaultKind::BrokerRestart | FaultKind::BrokerKill => {
            // Out of the stack while it is down, so that the per-second samples go on.
            let mut rabbit = locked(stack)
                .rabbit
                .take()
                .context("the stack uses a broker it did not start")?;
            let result = if kind == FaultKind::BrokerKill {
                rabbit.kill_and_restart()
            } else {
                rabbit.spec.ctl(&["stop_app"]).and_then(|_| {
                    std::thread::sleep(Duration::from_secs(5));
                    rabbit.spec.ctl(&["start_app"]).map(drop)
                })
            };
            locked(stack).rabbit = Some(rabbit);
            result
        }
        FaultKind::DatabaseRestart | FaultKind::DatabaseKill => {
            let mut postgres = locked(stack)
                .postgres
                .take()
                .context("the stack uses a database it did not start")?;
            let result = postgres.restart(kind == FaultKind::DatabaseKill);
            locked(stack).postgres = Some(postgres);
            result
        }
    }
}

fn locked(stack: &Mutex<Stack>) -> MutexGuard<'_, Stack> {
    stack.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_what_at_second() {
        let fault: Fault = "kill-executor@20".parse().unwrap();
        assert_eq!(fault.kind, FaultKind::Kill("herald-executor"));
        assert_eq!(fault.at_s, 20);
        assert_eq!(fault.name(), "kill-executor");
        for bad in ["kill-executor", "kill-executor@soon", "unplug@3"] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }
}
