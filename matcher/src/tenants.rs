//! Which tenants exist, for events published straight to the broker. Those name their tenant
//! themselves (ingest's own batches come from authenticated requests), and the events table has
//! no foreign key to tenants, so without this check an event for a tenant that does not exist
//! would be stored; instead it is dead-lettered with the code [`UNKNOWN_TENANT`].
//!
//! Why a set of known tenants in front of the database rather than a check inside the insert
//! (`INSERT ... WHERE EXISTS (tenant)`, then dead-letter the rows not inserted): a row the
//! insert skips cannot be told from a duplicate without another query, and its delivery would
//! have to be taken out of the batch after the commit, while the batch's acks are being sent.
//! Tenants are few and the same ones come back all the time, so the set answers nearly every
//! batch in memory with no round trip; a batch naming a tenant not seen yet costs one indexed
//! query for all such tenants of that batch. Tenants not found are not remembered: one created
//! a moment later is accepted at once, and a publisher naming a wrong tenant costs one small
//! query per batch, not per event. A tenant is never forgotten once seen (the API does not
//! delete tenants).

use std::collections::HashSet;
use std::sync::RwLock;

use herald_common::ids::TenantId;
use herald_common::store::Store;

/// The dead-letter code of an outside event whose `tenant_id` names no tenant.
pub const UNKNOWN_TENANT: &str = "unknown_tenant";

/// Tenants known to exist, filled from the database on a miss.
pub struct KnownTenants {
    store: Store,
    known: RwLock<HashSet<TenantId>>,
}

impl KnownTenants {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            known: RwLock::new(HashSet::new()),
        }
    }

    /// Of `tenants`, the ones that do not exist.
    pub async fn unknown(
        &self,
        tenants: impl IntoIterator<Item = TenantId>,
    ) -> Result<HashSet<TenantId>, sqlx::Error> {
        let missing: HashSet<TenantId> = {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            tenants.into_iter().filter(|t| !known.contains(t)).collect()
        };
        if missing.is_empty() {
            return Ok(missing);
        }
        let found = crate::store::tenants::existing_tenants(&self.store, &missing).await?;
        self.known
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(found.iter().copied());
        Ok(missing.difference(&found).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_one_metrics_create_ahead() {
        assert!(herald_common::messages::DEAD_LETTER_CODES.contains(&UNKNOWN_TENANT));
    }
}
