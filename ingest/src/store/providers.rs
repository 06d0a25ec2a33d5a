//! Providers: the senders of inbound webhooks a tenant has registered, one row each.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::provider::{EventTypeFrom, ProviderSpec, Scheme};
use herald_common::crypto::{KeyRing, SealError};
use herald_common::ids::{ProviderId, TenantId};
use herald_common::store::{Store, open_text, provider_context, seal_text};

/// A stored provider.
#[derive(Debug, Clone)]
pub struct ProviderRecord {
    pub id: ProviderId,
    pub tenant_id: TenantId,
    pub spec: ProviderSpec,
    pub created_at: DateTime<Utc>,
}

/// Why a provider could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ProviderWriteError {
    #[error("a provider named {0:?} already exists")]
    NameTaken(String),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, tenant_id, name, scheme, secret, tolerance_s, event_type, type_prefix, \
     source, signature_header, created_at";

fn decode_error(column: &str, message: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: message.into(),
    }
}

/// A provider as stored, its secret opened with `keys`.
fn from_row(row: &PgRow, keys: &KeyRing) -> Result<ProviderRecord, sqlx::Error> {
    let scheme_name: String = row.try_get("scheme")?;
    let scheme = Scheme::from_parts(&scheme_name, row.try_get("signature_header")?)
        .ok_or_else(|| decode_error("scheme", format!("unknown scheme {scheme_name:?}")))?;
    let event_type: serde_json::Value = row.try_get("event_type")?;
    let event_type: EventTypeFrom = serde_json::from_value(event_type)
        .map_err(|e| decode_error("event_type", e.to_string()))?;
    let tolerance_s: Option<i32> = row.try_get("tolerance_s")?;
    Ok(ProviderRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        spec: ProviderSpec {
            name: row.try_get("name")?,
            scheme,
            secret: open_text(
                keys,
                &row.try_get::<String, _>("secret")?,
                &provider_context(row.try_get("tenant_id")?, row.try_get("id")?),
            )
            .map_err(|e| decode_error("secret", e.to_string()))?,
            tolerance_s: tolerance_s.map(|t| t as u32),
            event_type,
            type_prefix: row.try_get("type_prefix")?,
            source: row.try_get("source")?,
        },
        created_at: row.try_get("created_at")?,
    })
}

pub async fn create_provider(
    store: &Store,
    tenant_id: TenantId,
    spec: &ProviderSpec,
) -> Result<ProviderRecord, ProviderWriteError> {
    let sql = format!(
        "INSERT INTO providers (id, tenant_id, name, scheme, secret, tolerance_s, event_type,
           type_prefix, source, signature_header)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (tenant_id, name) DO NOTHING
         RETURNING {COLUMNS}"
    );
    let event_type = serde_json::to_value(&spec.event_type).unwrap_or_default();
    let id = ProviderId::new();
    // Verifying a signature needs the secret itself: it is kept, sealed for this row.
    let secret = seal_text(
        store.keys(),
        &spec.secret,
        &provider_context(tenant_id.0, id.0),
    )?;
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(tenant_id)
        .bind(&spec.name)
        .bind(spec.scheme.as_str())
        .bind(secret)
        .bind(spec.tolerance_s.map(|t| t as i32))
        .bind(event_type)
        .bind(&spec.type_prefix)
        .bind(&spec.source)
        .bind(spec.scheme.signature_header())
        .fetch_optional(store.pool())
        .await?;
    match row {
        Some(row) => Ok(from_row(&row, store.keys())?),
        None => Err(ProviderWriteError::NameTaken(spec.name.clone())),
    }
}

/// The tenant's providers, oldest first.
pub async fn providers_of(
    store: &Store,
    tenant_id: TenantId,
) -> Result<Vec<ProviderRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM providers WHERE tenant_id = $1 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(tenant_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|row| from_row(row, store.keys())).collect()
}

pub async fn get_provider(
    store: &Store,
    tenant_id: TenantId,
    id: ProviderId,
) -> Result<Option<ProviderRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM providers WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref()
        .map(|row| from_row(row, store.keys()))
        .transpose()
}

/// Deletes one of the tenant's providers and returns it as it was: its hook URL answers
/// 404 from now on.
pub async fn delete_provider(
    store: &Store,
    tenant_id: TenantId,
    id: ProviderId,
) -> Result<Option<ProviderRecord>, sqlx::Error> {
    let sql = format!("DELETE FROM providers WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}");
    let row = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref()
        .map(|row| from_row(row, store.keys()))
        .transpose()
}

/// A provider by id alone, for `POST /v1/hooks/{id}`: the one query on tenant data without
/// a tenant, because a provider's delivery carries no tenant key, only the id in its URL.
/// The id routes the delivery; what authenticates it is the signature, checked next with
/// this provider's secret. The record names the tenant the event then belongs to.
pub async fn provider_for_hook(
    store: &Store,
    id: ProviderId,
) -> Result<Option<ProviderRecord>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM providers WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref()
        .map(|row| from_row(row, store.keys()))
        .transpose()
}
