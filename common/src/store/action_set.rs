//! Actions as code: a tenant's whole set of actions, keyed by name, applied in one
//! transaction (`PUT /v1/actions`).

use std::collections::HashSet;

use serde::Serialize;

use super::Store;
use super::actions::{
    ActionRecord, ActionWriteError, COLUMNS, from_row, insert_action, rewrite_action,
};
use crate::action::{ActionSpec, Handler};
use crate::ids::TenantId;

/// Most actions one set may hold.
pub const MAX_ACTION_SET: usize = 1000;

/// One action of a set, as validated.
#[derive(Debug, Clone)]
pub struct DesiredAction {
    pub spec: ActionSpec,
    /// The request gave no signing secret: keep the stored action's secrets (a set kept in a
    /// repository should not have to hold them, and must not rotate them on every apply).
    pub keep_secrets: bool,
}

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

/// `desired` as it is to be stored over `current` (if any): the stored secrets carried over
/// when it gave none, and credentials it sent back masked kept.
fn to_store(
    desired: &DesiredAction,
    current: Option<&ActionRecord>,
) -> Result<ActionSpec, ActionWriteError> {
    let mut spec = desired.spec.clone();
    if desired.keep_secrets
        && let (Handler::Webhook(new), Some(old)) = (
            &mut spec.handler,
            current.and_then(|c| c.spec.handler.webhook()),
        )
    {
        new.secrets = old.secrets.clone();
    }
    spec.restore_masked(current.map(|c| &c.spec))
        .map_err(|error| ActionWriteError::Invalid {
            name: spec.name.clone(),
            error,
        })?;
    Ok(spec)
}

impl Store {
    /// Applies a tenant's set of actions: creates the new names, rewrites the changed ones,
    /// leaves soft-deleted ones alone and, with `prune`, soft-deletes live actions the set
    /// does not name. All or nothing.
    pub async fn apply_action_set(
        &self,
        tenant_id: TenantId,
        desired: &[DesiredAction],
        prune: bool,
    ) -> Result<SetReport, ActionWriteError> {
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM actions WHERE tenant_id = $1 AND NOT one_off FOR UPDATE"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?;
        let current = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        let mut report = SetReport::default();
        for wanted in desired {
            let name = wanted.spec.name.clone();
            match current.iter().find(|a| a.spec.name == name) {
                None => {
                    let spec = to_store(wanted, None)?;
                    insert_action(&mut *tx, tenant_id, &spec, false).await?;
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
                        rewrite_action(&mut *tx, tenant_id, existing.id, &spec).await?;
                        report.updated.push(name);
                    }
                }
            }
        }
        if prune {
            let named: HashSet<&str> = desired.iter().map(|d| d.spec.name.as_str()).collect();
            for gone in current
                .iter()
                .filter(|a| a.deleted_at.is_none() && !named.contains(a.spec.name.as_str()))
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
                report.deleted.push(gone.spec.name.clone());
            }
        }
        tx.commit().await?;
        Ok(report)
    }
}
