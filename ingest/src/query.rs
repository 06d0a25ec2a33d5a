//! Reading query strings so that a bad one answers in the contract's error shape.

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::error_codes::ErrorCode;

/// Query parameters of type `T`; an unknown or malformed one answers 422.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map(QueryParams)
            .map_err(|error| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("bad query parameters: {error}"),
                )
            })
    }
}

/// Rows per page when a listing's `limit` is not given.
const DEFAULT_PAGE: i64 = 100;
/// The largest `limit` a listing takes.
const MAX_PAGE: i64 = 1000;

/// A listing's `limit`: 1 to 1000, 100 when absent.
pub fn page_limit(limit: Option<&str>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| invalid("limit", &format!("a number from 1 to {MAX_PAGE}"))),
    }
}

/// A query parameter that is not what it must be.
pub fn invalid(parameter: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("`{parameter}` must be {expected}"),
    )
}

/// An optional RFC 3339 time parameter.
pub fn time(parameter: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| invalid(parameter, "an RFC 3339 time"))
    })
    .transpose()
}

/// A listing's `cursor` (`next_cursor` of the previous page), if given.
pub fn cursor<Id: std::str::FromStr>(
    text: Option<&str>,
) -> Result<Option<(DateTime<Utc>, Id)>, ApiError> {
    text.map(|c| {
        crate::store::cursor::decode_cursor(c)
            .ok_or_else(|| invalid("cursor", "a cursor from a previous page"))
    })
    .transpose()
}

/// An optional start and end of a time filter.
pub type TimeFilter = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Optional `since` and `until` (RFC 3339), `since` before `until` when both are given.
pub fn time_window(since: Option<&str>, until: Option<&str>) -> Result<TimeFilter, ApiError> {
    let (since, until) = (time("since", since)?, time("until", until)?);
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(invalid("until", "later than `since`"));
    }
    Ok((since, until))
}
