//! The one mapping from errors to HTTP: `{"error": {"code", "message"}}` with a stable
//! snake_case code. Internal failures are logged and answered without their details.

use crate::provider::{ProviderError, VerifyError};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_common::action::ActionError;
use herald_common::crypto::SealError;
use herald_common::event::EventError;
use herald_common::json_bounds::JsonRefusal;
use herald_common::store::ActionWriteError;
use serde_json::json;

use crate::batcher::NotStored;
use crate::error_codes::ErrorCode;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    pub retry_after: Option<std::time::Duration>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A code produced as text (by event validation, a provider check), with its status
    /// from the table; one that is not declared there is Herald's fault.
    fn named(code: &str, message: impl Into<String>) -> Self {
        match ErrorCode::from_code(code) {
            Some(code) => Self::new(code, message),
            None => {
                tracing::error!(code, "an error code is not in the table");
                Self::new(ErrorCode::Internal, "internal error")
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "a valid bearer key is required")
    }

    /// Valid credentials, but not for this route.
    pub fn forbidden(message: &str) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {detail}"),
        )
    }

    /// JSON that could not be stored or read back, in the value `root` names (`data`,
    /// `payload`; empty for the whole body).
    pub fn json_refused(refusal: &JsonRefusal, root: &str) -> Self {
        Self::named(refusal.code(), refusal.message(root))
    }

    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let mut error = Self::new(
            ErrorCode::RateLimited,
            "too many requests for this tenant; retry after the time in Retry-After",
        );
        error.retry_after = Some(wait);
        error
    }

    /// PostgreSQL refused the request's own data (in its words): not worth sending again.
    pub fn unstorable(words: &str) -> Self {
        Self::new(
            ErrorCode::Unstorable,
            format!("the database refused what this request would store: {words}"),
        )
    }

    /// Past `ingest.max_backlog`: delivery is behind, so new events wait at the sender.
    pub fn overloaded() -> Self {
        let mut error = Self::new(
            ErrorCode::Overloaded,
            "delivery is behind; nothing was stored; retry after the time in Retry-After",
        );
        error.retry_after = Some(std::time::Duration::from_secs(1));
        error
    }

    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::Unavailable,
            "the service is temporarily unavailable; retry",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.code(), "message": self.message}});
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        Self::named(error.code, error.message)
    }
}

/// JSON in a whole body that could not be stored or read back (see
/// `herald_common::json_bounds`).
impl From<JsonRefusal> for ApiError {
    fn from(refusal: JsonRefusal) -> Self {
        Self::json_refused(&refusal, "")
    }
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        Self::new(ErrorCode::InvalidAction, error.to_string())
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        Self::new(ErrorCode::InvalidProvider, error.to_string())
    }
}

/// A provider's delivery that fails verification: 401, and nothing is stored.
impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        Self::named(error.code(), error.to_string())
    }
}

impl From<ActionWriteError> for ApiError {
    fn from(error: ActionWriteError) -> Self {
        match error {
            ActionWriteError::NameTaken(name) => Self::new(
                ErrorCode::NameTaken,
                format!("an action named {name:?} already exists"),
            ),
            ActionWriteError::RevisionMismatch(revision) => Self::new(
                ErrorCode::RevisionMismatch,
                format!("the action has changed since: it is at revision {revision}"),
            ),
            ActionWriteError::Invalid { name, error } => Self::new(
                ErrorCode::InvalidAction,
                format!("the action named {name:?}: {error}"),
            ),
            ActionWriteError::Seal(error) => error.into(),
            ActionWriteError::Database(error) => error.into(),
        }
    }
}

/// A value that could not be sealed or opened: a key missing from the configuration.
impl From<SealError> for ApiError {
    fn from(error: SealError) -> Self {
        tracing::error!(%error, "a sealed value could not be written or read");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

/// A request's events that the batcher did not store.
impl From<NotStored> for ApiError {
    fn from(error: NotStored) -> Self {
        match error {
            NotStored::Refused(words) => Self::unstorable(&words),
            NotStored::Unavailable => Self::unavailable(),
            NotStored::Overloaded => Self::overloaded(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if herald_common::store::is_data_error(&error)
            && let Some(refused) = error.as_database_error()
        {
            tracing::warn!(%error, "the database refused a request's data");
            return Self::unstorable(refused.message());
        }
        tracing::error!(%error, "database error while answering a request");
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::unavailable()
            }
            _ => Self::new(ErrorCode::Internal, "internal error"),
        }
    }
}
