//! Who is calling: a tenant (by API key) or the administrator (by the configured token).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_common::ids::TenantId;
use herald_common::signing::constant_time_eq;

use crate::error::ApiError;
use crate::state::AppState;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A request authenticated with a tenant's key.
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(tenant) => Ok(Tenant(tenant)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// A request authenticated with the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let expected = state.admin_token.as_bytes();
        if !expected.is_empty() && constant_time_eq(token.as_bytes(), expected) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized())
        }
    }
}
