//! How many live streams (`GET /v1/live`) each tenant may hold open on one ingest replica. Each
//! open stream queries the database every few seconds, so without a bound one tenant (or one
//! leaking dashboard) could keep the database busy; past the bound it gets 429.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_common::ids::TenantId;

/// Open streams per tenant per replica: several operators with a few tabs each.
pub const MAX_PER_TENANT: usize = 16;

#[derive(Clone, Default)]
pub struct LiveStreams {
    open: Arc<Mutex<HashMap<TenantId, usize>>>,
}

/// One open stream; closing it (dropping this) frees its place.
pub struct StreamSlot {
    streams: LiveStreams,
    tenant: TenantId,
}

impl LiveStreams {
    /// A place for one more of `tenant`'s streams, if it has fewer than the bound open.
    pub fn open(&self, tenant: TenantId) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(tenant).or_default();
        if *count >= MAX_PER_TENANT {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            streams: self.clone(),
            tenant,
        })
    }

    fn close(&self, tenant: TenantId) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&tenant) {
            *count -= 1;
            if *count == 0 {
                open.remove(&tenant);
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.streams.close(self.tenant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_has_its_own_bound_and_a_closed_stream_frees_its_place() {
        let streams = LiveStreams::default();
        let (a, b) = (TenantId::new(), TenantId::new());
        let held: Vec<StreamSlot> = (0..MAX_PER_TENANT)
            .map(|_| streams.open(a).expect("a place"))
            .collect();
        assert!(streams.open(a).is_none());
        assert!(streams.open(b).is_some(), "another tenant is not affected");
        drop(held);
        assert!(streams.open(a).is_some());
        assert!(
            streams.open.lock().unwrap().is_empty(),
            "closed streams leave nothing"
        );
    }
}
