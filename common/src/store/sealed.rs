//! Values sealed at rest, as the store writes and reads them: a handler (its whole JSON: signing
//! secrets, credentials and their templates), a provider's secret, a tenant's secret. Each is
//! bound to its row (`action/<tenant>/<id>`, ...). Values written before sealing began are read
//! as they are until [`Store::reseal`] seals them: `migrate` seals what is plain after the SQL
//! migrations, and `reencrypt` seals everything again with the current key after a rotation.

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use super::Store;
use crate::crypto::{KeyRing, SealError, is_sealed};

/// Seals `text` for the row `context` names.
pub fn seal_text(keys: &KeyRing, text: &str, context: &str) -> Result<String, SealError> {
    keys.seal(text.as_bytes(), context)
}

/// Opens a value sealed for `context`; a value written before sealing began is returned as it
/// is.
pub fn open_text(keys: &KeyRing, stored: &str, context: &str) -> Result<String, SealError> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    let plain = keys.open(stored, context)?;
    String::from_utf8(plain).map_err(|_| SealError::Corrupt)
}

/// A handler's JSON sealed as one JSON string.
pub(super) fn seal_json(keys: &KeyRing, value: &Value, context: &str) -> Result<Value, SealError> {
    Ok(Value::String(seal_text(keys, &value.to_string(), context)?))
}

/// A stored handler's plain JSON: opened when sealed, as it is when written before sealing.
pub(super) fn open_json(keys: &KeyRing, stored: Value, context: &str) -> Result<Value, SealError> {
    match stored {
        Value::String(text) if is_sealed(&text) => {
            serde_json::from_str(&open_text(keys, &text, context)?).map_err(|_| SealError::Corrupt)
        }
        other => Ok(other),
    }
}

/// The row a sealed action handler belongs to.
pub(super) fn action_context(tenant: Uuid, id: Uuid) -> String {
    format!("action/{tenant}/{id}")
}

/// The row a sealed provider secret belongs to.
pub fn provider_context(tenant: Uuid, id: Uuid) -> String {
    format!("provider/{tenant}/{id}")
}

/// The row a sealed tenant secret belongs to.
pub(super) fn secret_context(tenant: Uuid, name: &str) -> String {
    format!("secret/{tenant}/{name}")
}

/// What a re-sealing changed, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    pub actions: u64,
    pub providers: u64,
    pub secrets: u64,
}

/// A sealed column: its table, the key of its rows after `tenant_id`, and what its rows are
/// sealed for.
struct SealedColumn {
    table: &'static str,
    column: &'static str,
    /// jsonb (a handler: sealed as one JSON string) rather than text.
    json: bool,
    key: &'static str,
    key_type: &'static str,
    context: &'static str,
}

const SEALED_COLUMNS: [SealedColumn; 3] = [
    SealedColumn {
        table: "actions",
        column: "handler",
        json: true,
        key: "id",
        key_type: "uuid",
        context: "action",
    },
    SealedColumn {
        table: "providers",
        column: "secret",
        json: false,
        key: "id",
        key_type: "uuid",
        context: "provider",
    },
    SealedColumn {
        table: "secrets",
        column: "value",
        json: false,
        key: "name",
        key_type: "text",
        context: "secret",
    },
];

/// Rows re-sealed per transaction.
const PAGE: i64 = 500;

/// Which values a re-sealing rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reseal {
    /// Only those written before sealing began (what `migrate` seals).
    Plain,
    /// Every value not sealed with the current key (what `reencrypt` does after a rotation).
    NotCurrent,
}

impl Store {
    /// Seals with the current key the values `which` names. A page of rows per transaction,
    /// each row locked while it is rewritten, so it is safe beside running services and may be
    /// stopped and run again.
    pub async fn reseal(&self, which: Reseal) -> anyhow::Result<Resealed> {
        anyhow::ensure!(self.keys().can_seal(), SealError::NoKey);
        let [actions, providers, secrets] = &SEALED_COLUMNS;
        Ok(Resealed {
            actions: self.reseal_column(actions, which).await?,
            providers: self.reseal_column(providers, which).await?,
            secrets: self.reseal_column(secrets, which).await?,
        })
    }

    async fn reseal_column(&self, sealed: &SealedColumn, which: Reseal) -> anyhow::Result<u64> {
        let SealedColumn {
            table,
            column,
            json,
            key,
            key_type,
            context,
        } = sealed;
        let keys = self.keys();
        let filter = match (which, json) {
            (Reseal::NotCurrent, _) => "true".to_owned(),
            (Reseal::Plain, true) => format!("jsonb_typeof({column}) <> 'string'"),
            (Reseal::Plain, false) => format!("{column} NOT LIKE 'sealed:%'"),
        };
        let select = format!(
            "SELECT tenant_id, {key}::text AS key, {column}::text AS stored FROM {table}
             WHERE ($1::uuid IS NULL OR (tenant_id, {key}) > ($1::uuid, $2::text::{key_type}))
               AND {filter}
             ORDER BY tenant_id, {key} LIMIT {PAGE} FOR UPDATE"
        );
        let value = if *json { "to_jsonb($1::text)" } else { "$1" };
        let update = format!(
            "UPDATE {table} SET {column} = {value}
             WHERE tenant_id = $2 AND {key} = $3::text::{key_type}"
        );
        let mut resealed = 0;
        let mut after: Option<(Uuid, String)> = None;
        loop {
            let mut tx = self.pool.begin().await?;
            let rows = sqlx::query(&select)
                .bind(after.as_ref().map(|(tenant, _)| *tenant))
                .bind(after.as_ref().map(|(_, key)| key.as_str()))
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let tenant: Uuid = row.try_get("tenant_id")?;
                let row_key: String = row.try_get("key")?;
                let stored: String = row.try_get("stored")?;
                // A handler is jsonb: sealed, it is a JSON string; plain, an object.
                let stored_json = if *json {
                    Some(serde_json::from_str::<Value>(&stored)?)
                } else {
                    None
                };
                let text = match &stored_json {
                    Some(Value::String(text)) => text.as_str(),
                    Some(_) => "",
                    None => stored.as_str(),
                };
                if !keys.is_current(text) {
                    let context = format!("{context}/{tenant}/{row_key}");
                    let plain = match stored_json {
                        Some(value) => open_json(keys, value, &context)?.to_string(),
                        None => open_text(keys, &stored, &context)?,
                    };
                    sqlx::query(&update)
                        .bind(seal_text(keys, &plain, &context)?)
                        .bind(tenant)
                        .bind(&row_key)
                        .execute(&mut *tx)
                        .await?;
                    resealed += 1;
                }
                after = Some((tenant, row_key));
            }
            tx.commit().await?;
        }
        Ok(resealed)
    }
}
