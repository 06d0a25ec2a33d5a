//! Events: written once when accepted, then marked when the matcher has recorded their
//! executions. An event accepted over HTTP also gets a row in `event_outbox` until then: the
//! outbox sweep publishes again what stays there.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::Store;
use super::isolate::{WriteFailure, is_data_error, write_isolated};
use crate::event::{Event, EventId, EventType, RawJson};
use crate::ids::TenantId;

/// The result of offering one event for insertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertedEvent {
    /// Stored now.
    New,
    /// An event with the same id or idempotency key was stored before; this is its id.
    Duplicate(EventId),
}

/// A stored event as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
    pub matched_at: Option<DateTime<Utc>>,
    pub matched_count: Option<i32>,
}

struct Columns {
    tenant: Vec<Uuid>,
    id: Vec<String>,
    key: Vec<Option<String>>,
    event_type: Vec<String>,
    source: Vec<Option<String>>,
    time: Vec<Option<DateTime<Utc>>>,
    data: Vec<String>,
    metadata: Vec<serde_json::Value>,
    received_at: Vec<DateTime<Utc>>,
    /// Set for events stored already matched (see `insert_events_tx`).
    matched_count: Vec<Option<i32>>,
}

impl Columns {
    fn of(events: &[(&Event, Option<&str>)]) -> Self {
        Self {
            tenant: events.iter().map(|(e, _)| e.tenant_id.as_uuid()).collect(),
            id: events
                .iter()
                .map(|(e, _)| e.id.as_str().to_owned())
                .collect(),
            key: events.iter().map(|(_, k)| k.map(str::to_owned)).collect(),
            event_type: events
                .iter()
                .map(|(e, _)| e.event_type.as_str().to_owned())
                .collect(),
            source: events.iter().map(|(e, _)| e.source.clone()).collect(),
            time: events.iter().map(|(e, _)| e.time).collect(),
            data: events
                .iter()
                .map(|(e, _)| e.data.as_str().to_owned())
                .collect(),
            metadata: events
                .iter()
                .map(|(e, _)| serde_json::to_value(&e.metadata).unwrap_or_default())
                .collect(),
            received_at: events.iter().map(|(e, _)| e.received_at).collect(),
            matched_count: vec![None; events.len()],
        }
    }
}

impl Columns {
    /// The insert of these events: `RETURNING tenant_id, id` of the rows that were new.
    fn insert(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(INSERT_EVENTS)
            .bind(&self.tenant)
            .bind(&self.id)
            .bind(&self.key)
            .bind(&self.event_type)
            .bind(&self.source)
            .bind(&self.time)
            .bind(&self.data)
            .bind(&self.metadata)
            .bind(&self.received_at)
            .bind(&self.matched_count)
    }
}

/// Events that are not stored already matched get an outbox row in the same statement.
const INSERT_EVENTS: &str = "
    WITH new AS (
      INSERT INTO events (tenant_id, id, idempotency_key, type, source, time, data, metadata,
                          received_at, matched_at, matched_count)
      SELECT t, i, k, ty, s, tm, d::json, m, r, CASE WHEN c IS NULL THEN NULL ELSE now() END, c
      FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                  $7::text[], $8::jsonb[], $9::timestamptz[], $10::int[])
           AS u(t, i, k, ty, s, tm, d, m, r, c)
      ON CONFLICT DO NOTHING
      RETURNING tenant_id, id, received_at, matched_count),
    outbox AS (
      INSERT INTO event_outbox (tenant_id, id, received_at)
      SELECT tenant_id, id, received_at FROM new WHERE matched_count IS NULL)
    SELECT tenant_id, id FROM new";

impl Store {
    /// Stores a batch of accepted events in one statement. Each event may carry an idempotency
    /// key; an event whose id or key was seen before in its tenant is reported as a duplicate
    /// of the first one and not stored again.
    pub async fn insert_events(
        &self,
        events: &[(&Event, Option<&str>)],
    ) -> Result<Vec<InsertedEvent>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let c = Columns::of(events);
        let mut tx = self.pool.begin().await?;
        let inserted: Vec<(Uuid, String)> = c
            .insert()
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let inserted: std::collections::HashSet<(Uuid, String)> = inserted.into_iter().collect();
        // Within one batch the first of two equal ids or keys is the one stored.
        let mut claimed_in_batch = std::collections::HashSet::new();
        let mut outcome = Vec::with_capacity(events.len());
        let mut lookups = Vec::new();
        for (index, (event, key)) in events.iter().enumerate() {
            let row = (event.tenant_id.as_uuid(), event.id.as_str().to_owned());
            if inserted.contains(&row) && claimed_in_batch.insert(row) {
                outcome.push(InsertedEvent::New);
            } else {
                outcome.push(InsertedEvent::Duplicate(event.id.clone()));
                lookups.push((
                    index,
                    event.tenant_id,
                    event.id.clone(),
                    key.map(str::to_owned),
                ));
            }
        }
        for (index, tenant, id, key) in lookups {
            if let Some(original) = original_event_id(&mut tx, tenant, &id, key.as_deref()).await? {
                outcome[index] = InsertedEvent::Duplicate(original);
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// [`Store::insert_events`] for many requests' events at once, in one statement while
    /// nothing is wrong: each group is stored whole or not at all, and a group whose own data
    /// PostgreSQL refuses fails alone, every other group stored as if it had come alone (see
    /// [`write_isolated`]).
    pub async fn insert_event_groups(
        &self,
        groups: &[&[(Event, Option<String>)]],
    ) -> Vec<Result<Vec<InsertedEvent>, WriteFailure<sqlx::Error>>> {
        write_isolated(groups.len(), is_data_error, |range| {
            let groups = &groups[range];
            async move {
                let rows: Vec<(&Event, Option<&str>)> = groups
                    .iter()
                    .flat_map(|group| group.iter().map(|(e, k)| (e, k.as_deref())))
                    .collect();
                let mut outcomes = self.insert_events(&rows).await?.into_iter();
                Ok(groups
                    .iter()
                    .map(|group| outcomes.by_ref().take(group.len()).collect())
                    .collect())
            }
        })
        .await
    }

    /// Stores events that arrived straight from the broker, inside the matcher's transaction,
    /// already marked matched with their counts (an insert and then an update would write
    /// every row twice), and with no outbox row. Returns the events that were new (a
    /// redelivered or republished event is not).
    pub async fn insert_events_tx(
        tx: &mut Transaction<'static, Postgres>,
        events: &[(&Event, i32)],
    ) -> Result<Vec<(TenantId, EventId)>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<_> = events.iter().map(|(e, _)| (*e, None)).collect();
        let mut c = Columns::of(&pairs);
        c.matched_count = events.iter().map(|(_, count)| Some(*count)).collect();
        let rows = c.insert().fetch_all(&mut **tx).await?;
        rows.iter()
            .map(|row| {
                let tenant: Uuid = row.try_get(0)?;
                let id: String = row.try_get(1)?;
                Ok((
                    tenant.into(),
                    EventId::parse(&id).unwrap_or_else(|_| EventId::generate()),
                ))
            })
            .collect()
    }

    /// Marks events as matched (recording how many executions each produced).
    pub async fn mark_events_matched(
        tx: &mut Transaction<'static, Postgres>,
        matched: &[(TenantId, EventId, i32)],
    ) -> Result<(), sqlx::Error> {
        if matched.is_empty() {
            return Ok(());
        }
        let tenants: Vec<Uuid> = matched.iter().map(|(t, _, _)| t.as_uuid()).collect();
        let ids: Vec<&str> = matched.iter().map(|(_, e, _)| e.as_str()).collect();
        let counts: Vec<i32> = matched.iter().map(|(_, _, c)| *c).collect();
        // Only events still in the outbox are marked: a redelivered batch changes nothing.
        sqlx::query(
            "WITH done AS (
               DELETE FROM event_outbox o
               USING UNNEST($1::uuid[], $2::text[], $3::int[]) AS u(t, i, c)
               WHERE o.tenant_id = u.t AND o.id = u.i
               RETURNING u.t, u.i, u.c)
             UPDATE events e SET matched_at = now(), matched_count = done.c
             FROM done WHERE e.tenant_id = done.t AND e.id = done.i",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&counts)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Takes up to `limit` events accepted before `received_before` that no matcher has
    /// recorded yet and were not re-sent since `resent_before`, marking them re-sent now.
    /// (The outbox sweep: an event whose publication was lost is published again.)
    pub async fn take_unmatched_events(
        &self,
        received_before: DateTime<Utc>,
        resent_before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Event>, sqlx::Error> {
        let rows = sqlx::query(
            "WITH stale AS (
               SELECT tenant_id, id FROM event_outbox
               WHERE received_at < $1 AND (republished_at IS NULL OR republished_at < $2)
               ORDER BY received_at LIMIT $3
               FOR UPDATE SKIP LOCKED),
             resent AS (
               UPDATE event_outbox o SET republished_at = now()
               FROM stale WHERE o.tenant_id = stale.tenant_id AND o.id = stale.id
               RETURNING o.tenant_id, o.id)
             SELECT e.tenant_id, e.id, e.type, e.source, e.time, e.received_at,
                    e.data::text AS data, e.metadata
             FROM events e JOIN resent r ON e.tenant_id = r.tenant_id AND e.id = r.id",
        )
        .bind(received_before)
        .bind(resent_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            events.extend(event_from_row(row)?);
        }
        Ok(events)
    }

    /// One event of one tenant.
    pub async fn get_event(
        &self,
        tenant_id: TenantId,
        id: &str,
    ) -> Result<Option<StoredEvent>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stored_event_from_row).transpose()
    }
}

/// The columns [`stored_event_from_row`] reads.
pub const STORED_EVENT_COLUMNS: &str = "id, type, source, time, received_at, \
     data::text AS data, metadata, matched_at, matched_count";

/// An event as the API shows it, from a row with [`STORED_EVENT_COLUMNS`].
pub fn stored_event_from_row(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, sqlx::Error> {
    let data: String = row.try_get("data")?;
    Ok(StoredEvent {
        id: row.try_get("id")?,
        event_type: row.try_get("type")?,
        source: row.try_get("source")?,
        time: row.try_get("time")?,
        received_at: row.try_get("received_at")?,
        data: serde_json::from_str(&data).unwrap_or_default(),
        metadata: row.try_get("metadata")?,
        matched_at: row.try_get("matched_at")?,
        matched_count: row.try_get("matched_count")?,
    })
}

/// The columns every query that rebuilds an [`Event`] selects.
pub(super) const EVENT_COLUMNS: &str =
    "tenant_id, id, type, source, time, received_at, data::text AS data, metadata";

/// An event as it travels on the broker, from a row with [`EVENT_COLUMNS`]. `None` for a row
/// whose id or type no longer parses (written by an older, laxer version).
pub(super) fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<Option<Event>, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let event_type: String = row.try_get("type")?;
    let (Ok(id), Ok(event_type)) = (EventId::parse(&id), EventType::parse(&event_type)) else {
        return Ok(None);
    };
    let data: String = row.try_get("data")?;
    let metadata: serde_json::Value = row.try_get("metadata")?;
    Ok(Some(Event {
        tenant_id: row.try_get::<Uuid, _>("tenant_id")?.into(),
        id,
        event_type,
        source: row.try_get("source")?,
        time: row.try_get("time")?,
        received_at: row.try_get("received_at")?,
        data: RawJson::from_validated(data),
        metadata: serde_json::from_value(metadata).unwrap_or_default(),
        // The trace of an event taken from the outbox starts again at the matcher.
        trace: None,
    }))
}

/// The id of the event stored first with the same id or idempotency key in the tenant (the
/// key wins over the id: it is what the client sent to say "the same").
pub async fn original_event_id(
    db: &mut sqlx::PgConnection,
    tenant: TenantId,
    id: &EventId,
    key: Option<&str>,
) -> Result<Option<EventId>, sqlx::Error> {
    let original: Option<String> = sqlx::query_scalar(
        "SELECT id FROM events WHERE tenant_id = $1 AND (idempotency_key = $3 OR id = $2)
         ORDER BY (idempotency_key = $3) DESC NULLS LAST LIMIT 1",
    )
    .bind(tenant)
    .bind(id.as_str())
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(original.and_then(|o| EventId::parse(&o).ok()))
}

/// Stores one event already matched (`matched_count` executions recorded with it, so the
/// outbox never publishes it). Whether it was new: `false` when its id or idempotency key was
/// seen before.
pub async fn insert_matched_event(
    db: &mut sqlx::PgConnection,
    event: &Event,
    key: Option<&str>,
    matched_count: i32,
) -> Result<bool, sqlx::Error> {
    let mut c = Columns::of(&[(event, key)]);
    c.matched_count = vec![Some(matched_count)];
    let inserted = c.insert().fetch_optional(&mut *db).await?.is_some();
    Ok(inserted)
}
