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

fn is_admin_token(state: &AppState, token: &str) -> bool {
    let expected = state.admin_token.as_bytes();
    !expected.is_empty() && constant_time_eq(token.as_bytes(), expected)
}

/// A request authenticated with a tenant's key, within the tenant's request rate.
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if is_admin_token(state, token) {
            return Err(ApiError::forbidden(
                "the admin token manages tenants and keys; tenant data needs a tenant key",
            ));
        }
        let tenant = state
            .store
            .authenticate(token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        state
            .limiter
            .check(tenant)
            .map_err(ApiError::rate_limited)?;
        Ok(Tenant(tenant))
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
        if is_admin_token(state, token) {
            return Ok(Admin);
        }
        // A tenant's key is a real credential, just not for this: say so.
        if state.store.authenticate(token).await?.is_some() {
            return Err(ApiError::forbidden(
                "tenants and keys are managed with the admin token, not a tenant key",
            ));
        }
        Err(ApiError::unauthorized())
    }
}
