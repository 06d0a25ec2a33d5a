//! The actions executions belong to, read from PostgreSQL at most once a second each.
//!
//! Every attempt needs its action (its handler, typed once when read: its secret opened, its
//! templates compiled; retry policy; limits), and reading it per attempt would double the
//! database's work at full speed. A change (disable, delete, a new URL) reaches attempts within
//! [`FRESH_FOR`]. One read per action at a time: the attempts that find it stale wait for that
//! read rather than each making their own (with 64 attempts in flight per destination, they
//! would otherwise read and compile the same action dozens of times a second).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use herald_common::ids::{ActionId, TenantId};
use herald_common::store::Store;
use herald_handlers::Action;

/// How long a read action is used without reading it again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries beyond which the cache is emptied (it refills from what is in use).
const MAX_ENTRIES: usize = 100_000;

/// An action as last read (`None` inside: it no longer exists), behind the lock its readers
/// hold while one of them reads it again.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Option<Arc<Action>>)>>>;

pub struct ActionCache {
    store: Store,
    entries: Mutex<HashMap<(TenantId, ActionId), Slot>>,
}

impl ActionCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The action, as read within the last [`FRESH_FOR`]; `None` when it no longer exists.
    pub async fn get(
        &self,
        tenant_id: TenantId,
        id: ActionId,
    ) -> Result<Option<Arc<Action>>, sqlx::Error> {
        let slot = {
            let mut entries = self.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.entry((tenant_id, id)).or_default().clone()
        };
        let mut read = slot.lock().await;
        if let Some((read_at, action)) = &*read
            && read_at.elapsed() < FRESH_FOR
        {
            return Ok(action.clone());
        }
        let action = self.store.get_action(tenant_id, id).await?.map(Arc::new);
        *read = Some((Instant::now(), action.clone()));
        Ok(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, ActionId), Slot>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
