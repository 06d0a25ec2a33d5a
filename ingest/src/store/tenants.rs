//! Tenants and their API keys.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use herald_common::ids::{ApiKeyId, TenantId};
use herald_common::store::Store;

#[derive(Debug, Clone, Serialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const KEY_PREFIX: &str = "hk_";

fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

pub async fn create_tenant(store: &Store, name: &str) -> Result<TenantRecord, sqlx::Error> {
    let id = TenantId::new();
    let created_at: DateTime<Utc> =
        sqlx::query_scalar("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING created_at")
            .bind(id)
            .bind(name)
            .fetch_one(store.pool())
            .await?;
    Ok(TenantRecord {
        id,
        name: name.to_owned(),
        created_at,
    })
}

pub async fn get_tenant(store: &Store, id: TenantId) -> Result<Option<TenantRecord>, sqlx::Error> {
    let row: Option<(Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map(|(id, name, created_at)| TenantRecord {
        id: id.into(),
        name,
        created_at,
    }))
}

/// A tenant's keys, oldest first, revoked ones included (so an operator can see when a
/// key stopped working). Only the stored prefix is read: never the hash.
pub async fn api_keys_of(
    store: &Store,
    tenant_id: TenantId,
) -> Result<Vec<ApiKeyRecord>, sqlx::Error> {
    type Row = (Uuid, String, String, DateTime<Utc>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, key_prefix, created_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, prefix, created_at, revoked_at)| ApiKeyRecord {
            id: id.into(),
            tenant_id,
            name,
            prefix,
            created_at,
            revoked_at,
        })
        .collect())
}

/// Tenants by name, at most `limit` of them (for the admin's tenant picker).
pub async fn list_tenants(store: &Store, limit: i64) -> Result<Vec<TenantRecord>, sqlx::Error> {
    let rows: Vec<(Uuid, String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, name, created_at FROM tenants ORDER BY name, id LIMIT $1")
            .bind(limit)
            .fetch_all(store.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, created_at)| TenantRecord {
            id: id.into(),
            name,
            created_at,
        })
        .collect())
}

/// Creates a key and returns it with the plaintext, which is never stored nor shown again.
pub async fn create_api_key(
    store: &Store,
    tenant_id: TenantId,
    name: &str,
) -> Result<(ApiKeyRecord, String), sqlx::Error> {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret)
    );
    let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
    let id = ApiKeyId::new();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash, key_prefix)
         VALUES ($1, $2, $3, $4, $5) RETURNING created_at",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(name)
    .bind(hash_key(&key))
    .bind(&prefix)
    .fetch_one(store.pool())
    .await?;
    let record = ApiKeyRecord {
        id,
        tenant_id,
        name: name.to_owned(),
        prefix,
        created_at,
        revoked_at: None,
    };
    Ok((record, key))
}

/// The tenant a presented key belongs to, if the key exists and is not revoked. Keys are
/// looked up by their SHA-256, so the comparison never touches the secret itself.
pub async fn authenticate(store: &Store, key: &str) -> Result<Option<TenantId>, sqlx::Error> {
    if !key.starts_with(KEY_PREFIX) {
        return Ok(None);
    }
    let tenant: Option<Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_key(key))
    .fetch_optional(store.pool())
    .await?;
    Ok(tenant.map(TenantId::from))
}

pub async fn revoke_api_key(
    store: &Store,
    tenant_id: TenantId,
    key_id: ApiKeyId,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now()
         WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL",
    )
    .bind(key_id)
    .bind(tenant_id)
    .execute(store.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
