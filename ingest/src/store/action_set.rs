//! Actions as code: a tenant's whole set of actions, keyed by name, applied in one
//! transaction (`PUT /v1/actions`).

use std::collections::HashSet;

use serde::Serialize;

use herald_common::action::{ActionSpec, HandlerSpec};
use herald_common::ids::TenantId;
use herald_common::store::{
    ACTION_COLUMNS, ActionRecord, ActionWriteError, Store, action_from_row, insert_action,
    rewrite_action,
};

/// Most actions one set may hold.
pub const MAX_ACTION_SET: usize = 1000;

/// What applying a set did, by action name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// In the set, but soft-deleted here: left alone (restore it first to manage it again).
    pub skipped_deleted: Vec<String>,
    /// Live here but not in the set; soft-deleted because the request asked to prune.
    pub deleted: Vec<String>,
}

/// `desired` as it is to be stored over `current` (if any): what it left to the stored
/// action kept (its handler's secrets, credentials sent back masked), so that a set kept in a
/// repository need not hold them, and applying it twice changes nothing.
fn to_store<H: HandlerSpec>(
    desired: &ActionSpec<H>,
    current: Option<&ActionRecord<H>>,
) -> Result<ActionSpec<H>, ActionWriteError> {
    let mut spec = desired.clone();
    spec.keep_stored(current.map(|c| &c.spec))
        .map_err(|error| ActionWriteError::Invalid {
            name: spec.matching.name.clone(),
            error,
        })?;
    Ok(spec)
}

/// Applies a tenant's set of actions: creates the new names, rewrites the changed ones,
/// leaves soft-deleted ones alone and, with `prune`, soft-deletes live actions the set
/// does not name. All or nothing.
pub async fn apply_action_set<H: HandlerSpec>(
    store: &Store,
    tenant_id: TenantId,
    desired: &[ActionSpec<H>],
    prune: bool,
) -> Result<SetReport, ActionWriteError> {
    let mut tx = store.pool().begin().await?;
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = $1 AND NOT one_off FOR UPDATE"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .fetch_all(&mut *tx)
        .await?;
    let current = rows
        .iter()
        .map(|row| action_from_row::<H>(row, store.keys()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = SetReport::default();
    for wanted in desired {
        let name = wanted.matching.name.clone();
        match current.iter().find(|a| a.spec.matching.name == name) {
            None => {
                let spec = to_store(wanted, None)?;
                insert_action(&mut *tx, store.keys(), tenant_id, &spec, false).await?;
                report.created.push(name);
            }
            Some(existing) if existing.deleted_at.is_some() => {
                report.skipped_deleted.push(name);
            }
            Some(existing) => {
                let spec = to_store(wanted, Some(existing))?;
                if spec == existing.spec {
                    report.unchanged.push(name);
                } else {
                    rewrite_action(&mut *tx, store.keys(), tenant_id, existing.id, &spec).await?;
                    report.updated.push(name);
                }
            }
        }
    }
    if prune {
        let named: HashSet<&str> = desired.iter().map(|d| d.matching.name.as_str()).collect();
        for gone in current
            .iter()
            .filter(|a| a.deleted_at.is_none() && !named.contains(a.spec.matching.name.as_str()))
        {
            sqlx::query(
                "UPDATE actions SET deleted_at = now(), revision = revision + 1,
                   updated_at = now()
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(gone.id)
            .execute(&mut *tx)
            .await?;
            report.deleted.push(gone.spec.matching.name.clone());
        }
    }
    tx.commit().await?;
    Ok(report)
}
