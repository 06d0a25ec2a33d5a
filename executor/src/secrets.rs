//! The tenant secrets attempts render with, read from PostgreSQL (and opened) at most once a
//! second each, like the actions they belong to: a replaced or deleted secret reaches
//! attempts within [`FRESH_FOR`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use herald_common::ids::TenantId;
use herald_common::store::{SecretValues, Store};
use tokio::time::Instant;

/// How long an opened secret is used without reading it again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Entries beyond which the cache is emptied (it refills from what is in use).
const MAX_ENTRIES: usize = 100_000;

/// A secret as last read: its value, or `None` when the tenant has none of that name.
type Entry = (Instant, Option<String>);

pub struct SecretCache {
    store: Store,
    entries: Mutex<HashMap<(TenantId, String), Entry>>,
}

impl SecretCache {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The values of `names` the tenant has (a missing one is left out: the template that
    /// uses it fails, naming it).
    pub async fn get(&self, tenant_id: TenantId, names: &[&str]) -> anyhow::Result<SecretValues> {
        let mut values = SecretValues::default();
        if names.is_empty() {
            return Ok(values);
        }
        let mut stale = Vec::new();
        {
            let entries = self.lock();
            for name in names {
                match entries.get(&(tenant_id, (*name).to_owned())) {
                    Some((read_at, value)) if read_at.elapsed() < FRESH_FOR => {
                        if let Some(value) = value {
                            values.0.insert((*name).to_owned(), value.clone());
                        }
                    }
                    _ => stale.push(*name),
                }
            }
        }
        if stale.is_empty() {
            return Ok(values);
        }
        let read = self.store.secret_values(tenant_id, &stale).await?;
        let mut entries = self.lock();
        if entries.len() + stale.len() > MAX_ENTRIES {
            entries.clear();
        }
        let now = Instant::now();
        for name in stale {
            let value = read.get(name).map(str::to_owned);
            if let Some(value) = &value {
                values.0.insert(name.to_owned(), value.clone());
            }
            entries.insert((tenant_id, name.to_owned()), (now, value));
        }
        Ok(values)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}
