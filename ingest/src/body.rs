//! Reading request bodies so that every failure answers in the contract's error shape (axum's
//! own rejections are plain text).

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::error_codes::ErrorCode;

/// A JSON body of type `T`, within the configured size limit.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        check_json_content_type(&request)?;
        let bytes = read_bytes(request, state).await?;
        check_json_body(&bytes)?;
        refuse_nul_characters(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(ApiError::invalid_json)
    }
}

/// Like [`JsonBody`], for routes whose body may be left out: an empty body is `T::default()`.
/// Anything sent is held to the same rules (size, content type, JSON). The body is read
/// (within the size limit) before its type is judged, since an empty one needs no type.
pub struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // An empty body is no body, whatever type it claims (`curl -d ''` sends a form's).
        let content_type = check_json_content_type(&request);
        let bytes = read_bytes(request, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        content_type?;
        check_json_body(&bytes)?;
        refuse_nul_characters(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(OptionalJsonBody)
            .map_err(ApiError::invalid_json)
    }
}

/// Any JSON body, before it is parsed: nesting within what parsers take, numbers within a
/// 64-bit float, no lone surrogate escapes (see `herald_common::json_bounds`). Raw parts such
/// as an event's `data` are skipped by the parser, so this is what looks at them.
pub fn check_json_body(bytes: &[u8]) -> Result<(), ApiError> {
    herald_common::json_bounds::check(bytes, herald_common::json_bounds::BODY_MAX_DEPTH)
        .map_err(ApiError::from)
}

/// PostgreSQL's text and jsonb cannot hold U+0000, so a name, condition or setting carrying
/// one would fail at the insert (a 5xx) instead of being refused. JSON can only carry it
/// escaped, so bodies without `\u0000` (nearly all) are not walked.
fn refuse_nul_characters(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    fn holds_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(holds_nul),
            serde_json::Value::Object(map) => map
                .iter()
                .any(|(key, value)| key.contains('\0') || holds_nul(value)),
            _ => false,
        }
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) if holds_nul(&value) => Err(ApiError::new(
            ErrorCode::NulCharacter,
            "text in the body holds the NUL character (\\u0000), which cannot be stored",
        )),
        // Not JSON at all: the caller's parse reports that precisely.
        _ => Ok(()),
    }
}

/// A body without a content type is read as JSON (curl's habit); any other type but JSON is
/// refused before the body is read.
fn check_json_content_type(request: &Request) -> Result<(), ApiError> {
    let content_type = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase());
    match content_type {
        Some(content_type)
            if content_type != "application/json" && !content_type.ends_with("+json") =>
        {
            Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("content type {content_type:?} is not accepted; send application/json"),
            ))
        }
        _ => Ok(()),
    }
}

/// The raw body within the size limit, answering 413 past it.
pub async fn read_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::BodyTooLarge,
                    "the request body is larger than allowed",
                )
            } else {
                ApiError::new(ErrorCode::UnreadableBody, rejection.body_text())
            }
        })
}
