//! What an attempt waits for before it is sent, besides the process's own slots: its
//! destination's share of this executor, and its action's limits across every executor.
//!
//! Waiting holds a broker delivery, so it is short: beyond a bound the attempt is held back
//! without being spent (see `job::Executor::hold`) and comes back later, and the deliveries
//! behind it keep flowing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use herald_common::clock::SharedClock;
use herald_common::ids::{ActionId, ExecutionId, TenantId};
use herald_common::metrics::{Holding, Metrics};
use herald_common::store::Store;
use herald_handlers::Action;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::limits;

/// How often a full action's slots are asked for again.
const SLOT_POLL: Duration = Duration::from_millis(25);

struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Attempts in flight per destination in this process, so that a slow or dead endpoint holds
/// at most its share of the process, however many of its attempts arrive.
pub struct DestinationGates {
    per_destination: usize,
    max_waiting: usize,
    /// Longest an attempt waits for a slot: a destination that keeps attempts waiting longer is
    /// slow, and its work is held rather than kept in memory (and in the broker's prefetch).
    max_wait: Duration,
    gates: Mutex<HashMap<(TenantId, String), Arc<Gate>>>,
    /// For `herald_destination_in_flight`: attempts waiting for or holding a slot.
    metrics: Metrics,
}

/// A destination slot, given back when dropped.
pub struct DestinationSlot {
    _permit: OwnedSemaphorePermit,
    _counted: Holding,
}

impl DestinationGates {
    pub fn new(
        per_destination: usize,
        max_waiting: usize,
        max_wait: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            per_destination,
            max_waiting,
            max_wait,
            gates: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A slot for `endpoint`, waiting for one if need be; `None` when too many attempts wait
    /// for it already or none came within the longest wait (the caller holds this one back).
    /// A fast destination never waits that long, however much work it has: only a slow one's
    /// work is held.
    pub async fn enter(&self, tenant_id: TenantId, endpoint: &str) -> Option<DestinationSlot> {
        // Counted from the first wait to the slot's return; an attempt turned away leaves the
        // count when this is dropped.
        let counted = Holding::new(&self.metrics.destination_in_flight);
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            if gates.len() > 100_000 {
                // Forget idle destinations (no slot taken, nobody waiting).
                gates.retain(|_, g| {
                    Arc::strong_count(g) > 1 || g.slots.available_permits() < self.per_destination
                });
            }
            gates
                .entry((tenant_id, endpoint.to_owned()))
                .or_insert_with(|| {
                    Arc::new(Gate {
                        slots: Arc::new(Semaphore::new(self.per_destination)),
                        waiting: AtomicUsize::new(0),
                    })
                })
                .clone()
        };
        if let Ok(permit) = gate.slots.clone().try_acquire_owned() {
            return Some(DestinationSlot {
                _permit: permit,
                _counted: counted,
            });
        }
        if gate.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            gate.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = tokio::time::timeout(self.max_wait, gate.slots.clone().acquire_owned()).await;
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        match permit {
            Ok(Ok(permit)) => Some(DestinationSlot {
                _permit: permit,
                _counted: counted,
            }),
            _ => None,
        }
    }
}

/// `rate_limit_per_s` and `max_concurrency` of actions, enforced across executors through
/// PostgreSQL (only actions that set them pay for it).
pub struct ActionLimits {
    store: Store,
    clock: SharedClock,
    /// This process's share of each limited action's slots: never more in flight here than
    /// the limit, so polling the database only happens when other executors hold slots.
    /// Keyed by the limit too, so that a changed limit takes effect.
    local: Mutex<HashMap<(TenantId, ActionId, u32), Arc<Semaphore>>>,
}

/// Limits taken for one attempt; give them back with [`ActionLimits::release`].
pub struct Taken {
    slot: Option<(TenantId, ActionId, ExecutionId, OwnedSemaphorePermit)>,
}

/// Why an attempt could not go within the wait allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    RateLimited(Duration),
    Concurrency,
}

impl ActionLimits {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Takes what `action` requires for one attempt of `execution_id`, waiting up to `wait`.
    pub async fn take(
        &self,
        action: &Action,
        execution_id: ExecutionId,
        lease: Duration,
        wait: Duration,
    ) -> anyhow::Result<Result<Taken, Busy>> {
        let deadline = Instant::now() + wait;
        let mut taken = Taken { slot: None };
        if let Some(max) = action.spec.max_concurrency {
            let local = {
                let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
                local
                    .entry((action.tenant_id, action.id, max))
                    .or_insert_with(|| Arc::new(Semaphore::new(max as usize)))
                    .clone()
            };
            let permit = match tokio::time::timeout_at(deadline, local.acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => return Ok(Err(Busy::Concurrency)),
            };
            loop {
                let lease_until = self.clock.now() + chrono::Duration::from_std(lease)?;
                if limits::acquire_action_slot(
                    &self.store,
                    action.tenant_id,
                    action.id,
                    execution_id,
                    max,
                    lease_until,
                )
                .await?
                {
                    break;
                }
                if Instant::now() + SLOT_POLL > deadline {
                    return Ok(Err(Busy::Concurrency));
                }
                tokio::time::sleep(SLOT_POLL).await;
            }
            taken.slot = Some((action.tenant_id, action.id, execution_id, permit));
        }
        if let Some(rate) = action.spec.rate_limit_per_s {
            loop {
                let Some(after) =
                    limits::take_rate_token(&self.store, action.tenant_id, action.id, rate).await?
                else {
                    break;
                };
                if Instant::now() + after > deadline {
                    self.release(taken).await;
                    return Ok(Err(Busy::RateLimited(after)));
                }
                tokio::time::sleep(after).await;
            }
        }
        Ok(Ok(taken))
    }

    /// Gives back what [`ActionLimits::take`] took. A slot that cannot be given back (the
    /// database is away) frees itself when its lease ends.
    pub async fn release(&self, taken: Taken) {
        if let Some((tenant_id, action_id, execution_id, permit)) = taken.slot {
            if let Err(error) =
                limits::release_action_slot(&self.store, tenant_id, action_id, execution_id).await
            {
                tracing::warn!(error = %error, "an action slot is left to its lease");
            }
            drop(permit);
        }
    }
}
