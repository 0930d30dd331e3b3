//! Admin API authentication: `Authorization: Bearer TOKEN`, where TOKEN is the configured
//! `admin_token` or a named token that is not revoked (see `admin::tokens`). Anything else,
//! or no header, is 401 on every admin route.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::admin::{Actor, AdminTokens};
use crate::error::{ApiError, AppError};

/// Proof that the request carried a valid admin token, and whose it is (for the audit log);
/// take it as a handler argument.
pub struct Admin {
    pub actor: Actor,
}

impl<S> FromRequestParts<S> for Admin
where
    AdminTokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Admin, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::Unauthorized("send Authorization: Bearer TOKEN".into()))?;
        match AdminTokens::from_ref(state).authenticate(presented).await? {
            Some(authenticated) => Ok(Admin {
                actor: authenticated.actor,
            }),
            None => Err(AppError::Unauthorized(
                "the token is not valid: unknown, revoked, or no admin token is configured".into(),
            )
            .into()),
        }
    }
}
