//! Who is calling: a tenant (by API key) or the administrator (by the configured token).
//!
//! The admin token also reaches tenant data, but only for the tenant it names in the
//! `Herald-Tenant` header: an operator console signed in as the administrator picks a tenant
//! and then sees exactly what that tenant's key would, no more (every query stays filtered by
//! one tenant).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use herald_common::ids::TenantId;
use herald_handlers::signing::constant_time_eq;

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

/// The header with which the admin token names the tenant it acts for.
pub const ACT_FOR_TENANT: &str = "herald-tenant";

/// A request authenticated with a tenant's key (or the admin token naming the tenant in
/// [`ACT_FOR_TENANT`]), within the tenant's request rate.
pub struct Tenant(pub TenantId);

/// The tenant the admin token names, which must exist.
async fn named_tenant(parts: &Parts, state: &AppState) -> Result<TenantId, ApiError> {
    let named = parts.headers.get(ACT_FOR_TENANT).ok_or_else(|| {
        ApiError::forbidden(
            "the admin token reaches tenant data only for the tenant named in the \
             Herald-Tenant header; or use a tenant key",
        )
    })?;
    let id: TenantId = named
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    crate::store::tenants::get_tenant(&state.store, id)
        .await?
        .map(|tenant| tenant.id)
        .ok_or_else(|| ApiError::not_found("tenant"))
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let tenant = match Principal::from_request_parts(parts, state).await? {
            Principal::Admin => named_tenant(parts, state).await?,
            Principal::Tenant(tenant) => tenant,
        };
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
        match Principal::from_request_parts(parts, state).await? {
            Principal::Admin => Ok(Admin),
            // A tenant's key is a real credential, just not for this: say so.
            Principal::Tenant(_) => Err(ApiError::forbidden(
                "tenants and keys are managed with the admin token, not a tenant key",
            )),
        }
    }
}

/// Whoever holds a valid credential: the administrator or a tenant.
pub enum Principal {
    Admin,
    Tenant(TenantId),
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if is_admin_token(state, token) {
            return Ok(Principal::Admin);
        }
        crate::store::tenants::authenticate(&state.store, token)
            .await?
            .map(Principal::Tenant)
            .ok_or_else(ApiError::unauthorized)
    }
}
