//! Admin API authentication: `Authorization: Bearer TOKEN`, where TOKEN is the configured
//! `admin_token` or a named token that is not revoked (see `admin::tokens`). No token at all
//! is 401; a wrong one is 401 and spends one of the client address's failures
//! (`admin::throttle`); an address past its budget is 429 with `Retry-After` for every token,
//! the right one included, which is then not checked at all.
//!
//! [`Admin`] is for admin routes: a valid token without the `admin` scope is 403. [`Caller`]
//! is for the routes a scoped token may use; the handler checks the scope and the project
//! with [`Caller::may`].

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use super::client::ClientAddress;
use crate::admin::tokens::{Authenticated, Scope};
use crate::admin::{Actor, FailureKind};
use crate::error::{ApiError, AppError};

/// Proof that the request carried a valid token with the `admin` scope, and whose it is (for
/// the audit log); take it as a handler argument.
pub struct Admin {
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let Caller(token) = Caller::from_request_parts(parts, state).await?;
        if token.scope != Scope::Admin {
            return Err(AppError::Forbidden(format!(
                "this token's scope is {}; this route needs an admin token",
                token.describe_scope()
            ))
            .into());
        }
        Ok(Admin { actor: token.actor })
    }
}

/// Proof that the request carried a valid token of any scope.
pub struct Caller(pub Authenticated);

impl Caller {
    /// 403 unless the token may act with `needs` on `project`.
    pub fn may(&self, needs: Scope, project: &str) -> Result<(), AppError> {
        if self.0.may(needs, project) {
            return Ok(());
        }
        Err(AppError::Forbidden(format!(
            "this token's scope is {}; this needs {needs} on project {project}",
            self.0.describe_scope()
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let Ok(ClientAddress(address)) = ClientAddress::from_request_parts(parts, state).await;
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| AppError::Unauthorized("send Authorization: Bearer TOKEN".into()))?;
        let attempt = state
            .auth_throttle
            .check(address, FailureKind::Bearer)
            .await
            .map_err(AppError::from)?;
        match state.tokens.authenticate(presented).await {
            Ok(Some(authenticated)) => Ok(Caller(authenticated)),
            Ok(None) => {
                attempt.failed();
                Err(AppError::Unauthorized(
                    "the token is not valid: unknown, revoked, or no admin token is configured"
                        .into(),
                )
                .into())
            }
            // Not proven is a failure too: else, while the database is down, wrong guesses
            // (500) would cost nothing and the configured token (checked without it) would
            // still show as right.
            Err(e) => {
                attempt.failed();
                Err(e.into())
            }
        }
    }
}
