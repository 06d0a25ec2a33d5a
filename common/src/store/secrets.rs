//! A tenant's secrets: values that templates refer to as `{{ secrets.NAME }}`, sealed at rest
//! and never read back through the API. Ingest writes them; the executor opens the ones an
//! action refers to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::Store;
use super::sealed::{open_text, seal_text, secret_context};
use crate::crypto::SealError;
use crate::ids::TenantId;

/// Longest secret value: room for a PEM private key or a long token.
pub const MAX_SECRET_LEN: usize = 16 * 1024;

/// Whether `name` may name a secret: `[a-z0-9_]{1,64}`, so that `secrets.NAME` reads as a
/// template's attribute.
pub fn valid_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What the API shows of a secret: its name and times, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Opened secret values by name, for one render. Its `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values, for scrubbing them out of what is recorded.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

/// Why a secret could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SecretWriteError {
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn info(row: &sqlx::postgres::PgRow) -> Result<SecretInfo, sqlx::Error> {
    Ok(SecretInfo {
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Stores (or replaces) a secret; `true` in the answer when it is new. The caller checked
    /// the name and the value's length.
    pub async fn put_secret(
        &self,
        tenant_id: TenantId,
        name: &str,
        value: &str,
    ) -> Result<(SecretInfo, bool), SecretWriteError> {
        let sealed = seal_text(self.keys(), value, &secret_context(tenant_id.0, name))?;
        let row = sqlx::query(
            "INSERT INTO secrets (tenant_id, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = now()
             RETURNING name, created_at, updated_at, (xmax = 0) AS created",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(sealed)
        .fetch_one(self.pool())
        .await?;
        Ok((info(&row)?, row.try_get("created")?))
    }

    /// The tenant's secrets by name, without values.
    pub async fn secrets(&self, tenant_id: TenantId) -> Result<Vec<SecretInfo>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = $1
             ORDER BY name",
        )
        .bind(tenant_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(info).collect()
    }

    /// Which of `names` the tenant has no secret of.
    pub async fn missing_secrets(
        &self,
        tenant_id: TenantId,
        names: &[&str],
    ) -> Result<Vec<String>, sqlx::Error> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(
            "SELECT wanted FROM unnest($2::text[]) AS wanted
             WHERE NOT EXISTS (SELECT 1 FROM secrets WHERE tenant_id = $1 AND name = wanted)
             ORDER BY wanted",
        )
        .bind(tenant_id)
        .bind(names)
        .fetch_all(self.pool())
        .await
    }

    /// Removes a secret; `false` when there was none of that name.
    pub async fn delete_secret(
        &self,
        tenant_id: TenantId,
        name: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM secrets WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The values of those of `names` the tenant has, opened (a name it lacks is left out:
    /// the template that refers to it fails, naming it).
    pub async fn secret_values(
        &self,
        tenant_id: TenantId,
        names: &[&str],
    ) -> anyhow::Result<SecretValues> {
        if names.is_empty() {
            return Ok(SecretValues::default());
        }
        let rows = sqlx::query(
            "SELECT name, value FROM secrets WHERE tenant_id = $1 AND name = ANY($2::text[])",
        )
        .bind(tenant_id)
        .bind(names)
        .fetch_all(self.pool())
        .await?;
        let mut values = BTreeMap::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let stored: String = row.try_get("value")?;
            let value = open_text(self.keys(), &stored, &secret_context(tenant_id.0, &name))?;
            values.insert(name, value);
        }
        Ok(SecretValues(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for good in ["a", "crm_token", "x9", &"a".repeat(64)] {
            assert!(valid_secret_name(good), "{good}");
        }
        for bad in [
            "",
            "A",
            "crm-token",
            "secrets.x",
            "é",
            &"a".repeat(65),
            "a b",
        ] {
            assert!(!valid_secret_name(bad), "{bad}");
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let values = SecretValues([("crm".to_owned(), "hunter2".to_owned())].into());
        assert_eq!(format!("{values:?}"), "{\"crm\"}");
    }
}
