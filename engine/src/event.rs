//! The engine's view of an event: the few top-level fields matching always needs, and the raw
//! JSON of `data` (and `metadata`), read only where a condition looks.

use herald_common::event::{Event, Metadata};
use herald_common::ids::TenantId;

use std::ops::Deref;
use std::sync::Arc;

use super::json::{Cursor, Found, Malformed, PathTrie, Val, walk};
use super::tenant::TenantIndex;

/// Where an event's metadata is.
#[derive(Debug, Clone, Copy)]
pub enum MetadataRef<'a> {
    /// A JSON object of strings, as published to the broker.
    Raw(&'a str),
    /// Already decoded.
    Map(&'a Metadata),
    None,
}

/// An event as the engine reads it.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub tenant_id: TenantId,
    pub event_type: &'a str,
    pub source: Option<&'a str>,
    pub id: Option<&'a str>,
    /// The raw JSON of `data` (`null` when absent).
    pub data: &'a str,
    pub metadata: MetadataRef<'a>,
}

/// Why an event line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventLineError {
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("`{0}` is missing or not a string")]
    Missing(&'static str),
    #[error("`tenant_id` is not a tenant id")]
    BadTenant,
}

impl<'a> EventRef<'a> {
    /// Views an accepted event.
    pub fn of(event: &'a Event) -> Self {
        Self {
            tenant_id: event.tenant_id,
            event_type: event.event_type.as_str(),
            source: event.source.as_deref(),
            id: Some(event.id.as_str()),
            data: event.data.as_str(),
            metadata: MetadataRef::Map(&event.metadata),
        }
    }

    /// Reads an event as published to `herald.events` (JSON with `tenant_id`), touching only
    /// its top level: `data` and `metadata` stay raw.
    pub fn parse(line: &'a str) -> Result<Self, EventLineError> {
        read_line(
            line,
            None,
            |_| None::<Arc<TenantIndex>>,
            &mut Found::default(),
        )
        .map(|(event, _)| event)
    }

    /// Fills `found` with the values under the paths of the two tries.
    pub fn extract(
        &self,
        data_paths: &PathTrie,
        metadata_paths: &PathTrie,
        found: &mut Found<'a>,
    ) -> Result<(), Malformed> {
        super::json::extract(self.data, data_paths, found)?;
        match self.metadata {
            MetadataRef::Raw(raw) => super::json::extract(raw, metadata_paths, found),
            MetadataRef::Map(map) => {
                for (key, path) in metadata_paths.top_level() {
                    if let Some(value) = map.get(key) {
                        found.push(path, Val::Str(value.as_str().into()));
                    }
                }
                Ok(())
            }
            MetadataRef::None => Ok(()),
        }
    }
}

/// Reads only the top-level `tenant_id` of a JSON line (events and action lines both carry
/// one), skipping everything else without building it: enough to route a line to the part of a
/// load, or the replica, that owns its tenant.
pub fn tenant_of_line(line: &str) -> Result<TenantId, EventLineError> {
    let mut cursor = Cursor::new(line);
    let mut tenant = None;
    cursor.object(|key, cursor| {
        match key {
            "tenant_id" => tenant = top_string(cursor)?,
            _ => cursor.skip()?,
        }
        Ok(())
    })?;
    cursor.finish()?;
    tenant
        .ok_or(EventLineError::Missing("tenant_id"))?
        .parse()
        .map_err(|_| EventLineError::BadTenant)
}

/// A tenant id already parsed from its text (spares parsing it again).
#[derive(Debug, Clone, Copy)]
pub struct KnownTenant<'t> {
    pub text: &'t str,
    pub id: TenantId,
}

/// Reads an event line in one pass. As soon as `tenant_id` is read, `lookup` may return the
/// tenant's index; `data` and `metadata` met after that are read in place through the index's
/// path tries into `found`, and those met before are kept raw and read afterwards. Either way
/// `found` is complete on return. Without an index both stay raw in the returned event.
pub fn read_line<'a, I: Deref<Target = TenantIndex>>(
    line: &'a str,
    known: Option<KnownTenant<'_>>,
    mut lookup: impl FnMut(TenantId) -> Option<I>,
    found: &mut Found<'a>,
) -> Result<(EventRef<'a>, Option<I>), EventLineError> {
    let mut cursor = Cursor::new(line);
    let mut tenant = None;
    let mut index: Option<I> = None;
    let (mut event_type, mut source, mut id) = (None, None, None);
    let (mut data, mut metadata): (Option<&str>, Option<&str>) = (None, None);
    let mut bad_tenant = false;
    cursor.object(|key, cursor| {
        match key {
            "tenant_id" => {
                let text = top_string(cursor)?;
                tenant = match known {
                    Some(known) if text == Some(known.text) => Some(known.id),
                    _ => text.and_then(|t| t.parse::<TenantId>().ok()),
                };
                bad_tenant = text.is_some() && tenant.is_none();
                index = tenant.and_then(&mut lookup);
                if let Some(index) = &index {
                    index.prefetch();
                }
            }
            "type" => event_type = top_string(cursor)?,
            "source" => source = top_string(cursor)?,
            "id" => id = top_string(cursor)?,
            "data" | "metadata" => {
                let is_data = key == "data";
                match &index {
                    // The tenant is known: read what its conditions need, right here.
                    Some(index) => {
                        let paths = &index.paths;
                        let trie = if is_data {
                            &paths.data
                        } else {
                            &paths.metadata
                        };
                        if trie.is_empty() {
                            cursor.skip()?;
                        } else {
                            walk(cursor, trie, 0, found)?;
                        }
                    }
                    // Not yet: keep the raw text for a second look.
                    None => {
                        cursor.skip_whitespace();
                        let start = cursor.position();
                        cursor.skip()?;
                        let raw = cursor.slice(start);
                        if is_data {
                            data = Some(raw);
                        } else {
                            metadata = Some(raw);
                        }
                    }
                }
            }
            _ => cursor.skip()?,
        }
        Ok(())
    })?;
    cursor.finish()?;
    if bad_tenant {
        return Err(EventLineError::BadTenant);
    }
    let event = EventRef {
        tenant_id: tenant.ok_or(EventLineError::Missing("tenant_id"))?,
        event_type: event_type.ok_or(EventLineError::Missing("type"))?,
        source,
        id,
        data: data.unwrap_or("null"),
        metadata: metadata.map_or(MetadataRef::None, MetadataRef::Raw),
    };
    if let Some(index) = &index
        && (data.is_some() || metadata.is_some())
    {
        event.extract(&index.paths.data, &index.paths.metadata, found)?;
    }
    Ok((event, index))
}

/// A top-level string field; escaped strings (rare in these fields) are not expected here and
/// read as missing rather than copied.
pub fn top_string<'a>(cursor: &mut Cursor<'a>) -> Result<Option<&'a str>, Malformed> {
    match cursor.value()? {
        Val::Str(std::borrow::Cow::Borrowed(text)) => Ok(Some(text)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_top_level_and_keeps_data_raw() {
        let tenant = TenantId::new();
        let line = format!(
            r#"{{"type": "user.created", "data": {{"a": [1, {{"b": "}}"}}]}}, "tenant_id": "{tenant}",
                "metadata": {{"region": "eu"}}, "extra": [1,2], "source": "crm", "id": "e-1"}}"#
        );
        let event = EventRef::parse(&line).unwrap();
        assert_eq!(event.tenant_id, tenant);
        assert_eq!(event.event_type, "user.created");
        assert_eq!(event.source, Some("crm"));
        assert_eq!(event.id, Some("e-1"));
        assert_eq!(event.data, r#"{"a": [1, {"b": "}"}]}"#);
        assert!(matches!(
            event.metadata,
            MetadataRef::Raw("{\"region\": \"eu\"}")
        ));
    }

    #[test]
    fn missing_or_bad_fields_are_errors() {
        let tenant = TenantId::new();
        let cases = [
            (
                r#"{"type": "a"}"#.to_owned(),
                EventLineError::Missing("tenant_id"),
            ),
            (
                format!(r#"{{"tenant_id": "{tenant}"}}"#),
                EventLineError::Missing("type"),
            ),
            (
                r#"{"tenant_id": "nope", "type": "a"}"#.to_owned(),
                EventLineError::BadTenant,
            ),
        ];
        for (line, error) in cases {
            assert_eq!(EventRef::parse(&line).unwrap_err(), error, "{line}");
        }
        assert!(EventRef::parse("{\"type\": ").is_err());
    }
}
