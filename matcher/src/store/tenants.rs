//! Which of some tenant ids exist: for events published straight to the broker, which name
//! their tenant themselves (see `matcher::tenants`).

use std::collections::HashSet;

use uuid::Uuid;

use herald_common::ids::TenantId;
use herald_common::store::Store;

/// The tenants of `ids` that exist, in one indexed lookup.
pub async fn existing_tenants(
    store: &Store,
    ids: &HashSet<TenantId>,
) -> Result<HashSet<TenantId>, sqlx::Error> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
    let found: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(store.pool())
        .await?;
    Ok(found.into_iter().map(TenantId::from).collect())
}
