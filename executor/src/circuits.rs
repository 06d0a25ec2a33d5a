//! The executor's side of the shared circuit breakers (decisions in `herald_common::circuit`,
//! rows in `Store`): admission from a cache of the rows, outcomes condensed and written every
//! `circuit_sync_ms`, probes claimed and reported one by one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_common::circuit::{Admission, Circuit, CircuitPolicy, Outcomes, State};
use herald_common::clock::SharedClock;
use herald_common::ids::TenantId;
use herald_common::metrics::Metrics;
use herald_common::store::{CircuitEntry, EndpointOutcomes, Store};
use tokio_util::sync::CancellationToken;

type Key = (TenantId, String);

/// Outcomes not yet written: the counts, the last error, when the first was seen.
type Pending = (Outcomes, Option<String>, DateTime<Utc>);

/// Rows re-read after their last seen change: a transaction that stamped its row before
/// another but committed after it is still seen.
const REREAD_OVERLAP: chrono::Duration = chrono::Duration::seconds(2);

pub struct Circuits {
    store: Store,
    clock: SharedClock,
    policy: CircuitPolicy,
    metrics: Metrics,
    /// Circuits that are not closed; a destination absent here is closed.
    not_closed: RwLock<HashMap<Key, Circuit>>,
    /// Outcomes of ordinary attempts not yet written, with the last error seen.
    pending: Mutex<HashMap<Key, Pending>>,
}

impl Circuits {
    pub fn new(store: Store, clock: SharedClock, policy: CircuitPolicy, metrics: Metrics) -> Self {
        Self {
            store,
            clock,
            policy,
            metrics,
            not_closed: RwLock::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// What to do with an attempt to `endpoint` now, from the last rows read.
    pub fn admit(&self, tenant_id: TenantId, endpoint: &str, now: DateTime<Utc>) -> Admission {
        let not_closed = self.not_closed.read().unwrap_or_else(|e| e.into_inner());
        // Nearly always every circuit is closed: answer without building a key.
        if not_closed.is_empty() {
            return Admission::Send;
        }
        match not_closed.get(&(tenant_id, endpoint.to_owned())) {
            Some(circuit) => circuit.admit(&self.policy, now),
            None => Admission::Send,
        }
    }

    /// Tries to claim a probe of an open circuit: whether this attempt may go as one.
    pub async fn claim_probe(
        &self,
        tenant_id: TenantId,
        endpoint: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        let claimed = self
            .store
            .claim_probe(tenant_id, endpoint, &self.policy, now)
            .await?;
        if let Some(entry) = &claimed {
            self.remember(entry);
            self.metrics
                .circuit_transitions
                .with_label_values(&[State::HalfOpen.as_str()])
                .inc();
        }
        Ok(claimed.is_some())
    }

    /// Reports a probe's result at once: it decides the circuit's state.
    pub async fn probe_result(
        &self,
        tenant_id: TenantId,
        endpoint: &str,
        success: bool,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let entry = self
            .store
            .probe_result(tenant_id, endpoint, success, error, &self.policy, now)
            .await?;
        if let Some(entry) = &entry {
            self.remember(entry);
            self.metrics
                .circuit_transitions
                .with_label_values(&[entry.circuit.state.as_str()])
                .inc();
        }
        Ok(())
    }

    /// Notes an ordinary attempt's outcome, written with the next sync.
    pub fn record(&self, tenant_id: TenantId, endpoint: &str, success: bool, error: Option<&str>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (outcomes, last_error, _) = pending
            .entry((tenant_id, endpoint.to_owned()))
            .or_insert_with(|| (Outcomes::default(), None, self.clock.now()));
        outcomes.record(success);
        if let Some(error) = error {
            *last_error = Some(error.to_owned());
        }
    }

    /// Writes pending outcomes and reads back changed circuits every `interval`, until
    /// `shutdown` (then writes once more).
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut seen: Option<DateTime<Utc>> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => {
                    if let Err(error) = self.flush().await {
                        tracing::warn!(error = %error, "circuit outcomes not written at shutdown");
                    }
                    return;
                }
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(error = %error, "circuit outcomes not written; retrying");
            }
            match self
                .store
                .circuits_changed_since(seen.map(|s| s - REREAD_OVERLAP))
                .await
            {
                Ok(entries) => {
                    for entry in &entries {
                        seen = seen.max(Some(entry.updated_at));
                        self.remember(entry);
                    }
                    self.show_states();
                }
                Err(error) => tracing::warn!(error = %error, "circuits not read; retrying"),
            }
        }
    }

    async fn flush(&self) -> Result<(), sqlx::Error> {
        let batch: Vec<EndpointOutcomes> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(
                    |((tenant_id, endpoint), (outcomes, last_error, first_seen))| {
                        EndpointOutcomes {
                            tenant_id,
                            endpoint,
                            outcomes,
                            last_error,
                            first_seen,
                        }
                    },
                )
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let written = match self
            .store
            .absorb_outcomes(&batch, &self.policy, self.clock.now())
            .await
        {
            Ok(written) => written,
            Err(error) => {
                // Put them back for the next sync: outcomes are facts, not to be lost.
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for item in batch {
                    let (later, last_error, first_seen) = pending
                        .entry((item.tenant_id, item.endpoint))
                        .or_insert_with(|| (Outcomes::default(), None, item.first_seen));
                    *later = item.outcomes.then(later);
                    *first_seen = item.first_seen.min(*first_seen);
                    if last_error.is_none() {
                        *last_error = item.last_error;
                    }
                }
                return Err(error);
            }
        };
        for entry in &written {
            let was_open = self.admit_state(entry) == Some(State::Open);
            if entry.circuit.state == State::Open && !was_open {
                tracing::warn!(
                    tenant = %entry.tenant_id,
                    endpoint = %entry.endpoint,
                    retry_at = ?entry.circuit.retry_at,
                    "circuit opened"
                );
                self.metrics
                    .circuit_transitions
                    .with_label_values(&[State::Open.as_str()])
                    .inc();
            }
            self.remember(entry);
        }
        Ok(())
    }

    fn admit_state(&self, entry: &CircuitEntry) -> Option<State> {
        let not_closed = self.not_closed.read().unwrap_or_else(|e| e.into_inner());
        not_closed
            .get(&(entry.tenant_id, entry.endpoint.clone()))
            .map(|c| c.state)
    }

    fn remember(&self, entry: &CircuitEntry) {
        let mut not_closed = self.not_closed.write().unwrap_or_else(|e| e.into_inner());
        let key = (entry.tenant_id, entry.endpoint.clone());
        if entry.circuit.state == State::Closed {
            not_closed.remove(&key);
        } else {
            not_closed.insert(key, entry.circuit);
        }
    }

    fn show_states(&self) {
        let not_closed = self.not_closed.read().unwrap_or_else(|e| e.into_inner());
        for state in [State::Open, State::HalfOpen] {
            let count = not_closed.values().filter(|c| c.state == state).count();
            self.metrics
                .circuits
                .with_label_values(&[state.as_str()])
                .set(count as i64);
        }
    }
}
