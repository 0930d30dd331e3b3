//! Admin authentication: `Authorization: Bearer TOKEN`, compared in constant time with the
//! configured `admin_token`. With no token configured, every admin route answers 401.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::error::{ApiError, AppError};

/// The configured admin token, if any.
#[derive(Clone, Default)]
pub struct AdminToken(pub Option<Arc<str>>);

/// Proof that the request carried the admin token; take it as a handler argument.
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    AdminToken: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Admin, ApiError> {
        let AdminToken(expected) = AdminToken::from_ref(state);
        let Some(expected) = expected else {
            return Err(AppError::Unauthorized(
                "no admin token is configured (set admin_token or BALER_ADMIN_TOKEN)".into(),
            )
            .into());
        };
        let given = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| AppError::Unauthorized("send Authorization: Bearer TOKEN".into()))?;
        if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
            Ok(Admin)
        } else {
            Err(AppError::Unauthorized("the admin token is not valid".into()).into())
        }
    }
}
