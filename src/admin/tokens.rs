//! API tokens: the configured `admin_token` (named `admin_token` in the audit log) and named
//! tokens made with `baler token create`. A named token is `baler_` + 43 base64url characters
//! (32 random bytes); only its sha256 is stored. Every check reads the database, so a revoked
//! token stops working at once, in every process.
//!
//! A named token has a [`Scope`]: `admin` (every admin route and the admin page), or
//! `release` / `read` for one project, which a CI job holds to request releases of it and
//! follow their queue items.

use std::sync::Arc;

use base64::Engine;
use entities::api_token;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, SqlErr,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Actor, AdminError};
use crate::names::UnknownName;

/// The audit log's name for the configured `admin_token`; no named token may take it.
pub const CONFIGURED_NAME: &str = "admin_token";

/// What every named token starts with, so that it is recognisable in a leak scan.
pub const PREFIX: &str = "baler_";

/// `last_used_at` is written at most this often per token, not on every request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Which token a request or a session was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The configured `admin_token`.
    Configured,
    /// A named token, by id.
    Named(i64),
}

/// What a token may do. Each scope includes the ones before it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownName,
    parse_err_fn = unknown_scope
)]
pub enum Scope {
    /// Follow one project's queue items (`GET /api/v1/items/{id}`).
    Read,
    /// `read`, and request releases of that project (`POST /api/v1/projects/{p}/releases`).
    Release,
    /// Every admin route, every project, and the admin page.
    Admin,
}

fn unknown_scope(value: &str) -> UnknownName {
    UnknownName::new(
        "token scope",
        value,
        <Scope as strum::VariantNames>::VARIANTS,
    )
}

crate::names::value_enum!(Scope);

/// A token that holds, and whose holder it is.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub actor: Actor,
    pub credential: Credential,
    pub scope: Scope,
    /// The one project a `release` or `read` token covers; none for `admin`.
    pub project: Option<String>,
}

impl Authenticated {
    /// Whether this token may act with `needs` on `project`: an admin token on every project,
    /// a scoped one on its own project up to its scope.
    pub fn may(&self, needs: Scope, project: &str) -> bool {
        self.scope == Scope::Admin
            || (self.scope >= needs && self.project.as_deref() == Some(project))
    }

    /// The token's scope in words, for a refusal: `release (project demo)`.
    pub fn describe_scope(&self) -> String {
        match &self.project {
            Some(project) => format!("{} (project {project})", self.scope),
            None => self.scope.to_string(),
        }
    }
}

/// A token just made: `secret` is shown once and never stored.
#[derive(Debug)]
pub struct NewToken {
    pub id: i64,
    pub name: String,
    pub secret: String,
}

/// A named token as `baler token list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// As stored: a scope this build does not know is listed, and refused when presented.
    pub scope: String,
    pub project: Option<String>,
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks tokens; cheap to clone.
#[derive(Clone)]
pub struct AdminTokens {
    db: DatabaseConnection,
    configured: Option<Arc<str>>,
}

impl AdminTokens {
    pub fn new(db: DatabaseConnection, configured: Option<&str>) -> AdminTokens {
        AdminTokens {
            db,
            configured: configured.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// The configured `admin_token`, if any.
    pub fn configured(&self) -> Option<&str> {
        self.configured.as_deref()
    }

    /// Whose token `presented` is: the configured one, or a named one that is not revoked.
    /// Comparisons are constant-time: the configured token's and the presented one's sha256
    /// are compared, so not even the length leaks; a named token is found by its hash, and
    /// the hash is compared again in constant time.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<Authenticated>, DbErr> {
        let presented = presented.trim();
        let digest = Sha256::digest(presented.as_bytes());
        if let Some(configured) = &self.configured
            && bool::from(digest.ct_eq(&Sha256::digest(configured.as_bytes())))
        {
            return Ok(Some(Authenticated {
                actor: Actor::token(CONFIGURED_NAME),
                credential: Credential::Configured,
                scope: Scope::Admin,
                project: None,
            }));
        }
        if !presented.starts_with(PREFIX) {
            return Ok(None);
        }
        let hash = hex::encode(digest);
        let Some(row) = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(hash.as_str()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        if !bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        Ok(self.live(row).await)
    }

    /// Whether the admin page session `sid` was ended by logging out.
    pub async fn session_ended(&self, sid: &str) -> Result<bool, DbErr> {
        Ok(entities::ended_session::Entity::find_by_id(sid.to_string())
            .one(&self.db)
            .await?
            .is_some())
    }

    /// The holder of named admin token `id` if it still exists and is not revoked (sessions
    /// check this on every request; only admin tokens open sessions).
    pub async fn named(&self, id: i64) -> Result<Option<Actor>, DbErr> {
        let Some(row) = api_token::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(self
            .live(row)
            .await
            .filter(|a| a.scope == Scope::Admin)
            .map(|a| a.actor))
    }

    /// A token row that is not revoked, with its use noted.
    async fn live(&self, row: api_token::Model) -> Option<Authenticated> {
        if row.revoked_at.is_some() {
            return None;
        }
        // A scope this build does not know (written by a newer one) grants nothing.
        let scope = match row.scope.parse::<Scope>() {
            Ok(scope) => scope,
            Err(e) => {
                tracing::warn!(token = row.id, error = %e, "token refused");
                return None;
            }
        };
        self.touch(&row).await;
        Some(Authenticated {
            actor: Actor::token(&row.name),
            credential: Credential::Named(row.id),
            scope,
            project: row.project,
        })
    }

    /// Notes a use in `last_used_at`, unless one was noted in the last minute. A failure
    /// only costs the note, not the request.
    async fn touch(&self, row: &api_token::Model) {
        let now = crate::time::now_millis();
        if row
            .last_used_at
            .is_some_and(|used| now - used < TOUCH_EVERY_MS)
        {
            return;
        }
        let result = api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, now.into())
            .filter(api_token::Column::Id.eq(row.id))
            .exec(&self.db)
            .await;
        if let Err(e) = result {
            tracing::warn!(token = row.id, error = %e, "could not note the token's use");
        }
    }
}

/// Names are 1–64 of `A-Z a-z 0-9 . _ -`, and not [`CONFIGURED_NAME`].
fn check_name(name: &str) -> Result<(), AdminError> {
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !well_formed {
        return Err(AdminError::Invalid(format!(
            "token name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    if name == CONFIGURED_NAME {
        return Err(AdminError::Invalid(format!(
            "the name {CONFIGURED_NAME:?} stands for the configured admin token; choose another"
        )));
    }
    Ok(())
}

/// An admin token covers every project; a `release` or `read` token exactly one, which must
/// exist (disabled or not).
async fn check_scope<C: ConnectionTrait>(
    conn: &C,
    scope: Scope,
    project: Option<&str>,
) -> Result<(), AdminError> {
    match (scope, project) {
        (Scope::Admin, Some(_)) => Err(AdminError::Invalid(
            "an admin token covers every project: leave out the project, or choose the scope \
             release or read"
                .into(),
        )),
        (Scope::Admin, None) => Ok(()),
        (_, None) => Err(AdminError::Invalid(format!(
            "a {scope} token is for one project: name it (--project NAME)"
        ))),
        (_, Some(project)) => {
            match crate::projects::find_including_disabled(conn, project).await? {
                Some(_) => Ok(()),
                None => Err(AdminError::NotFound(format!(
                    "no project named {project:?}"
                ))),
            }
        }
    }
}

/// Makes a token named `name` with `scope` over `project` (on `conn`, the action's
/// transaction).
pub(super) async fn create<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    scope: Scope,
    project: Option<&str>,
) -> Result<NewToken, AdminError> {
    check_name(name)?;
    check_scope(conn, scope, project).await?;
    let secret = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(super::random_bytes::<32>()?)
    );
    let row = api_token::ActiveModel {
        name: Set(name.to_string()),
        token_hash: Set(sha256_hex(&secret)),
        created_at: Set(crate::time::now_millis()),
        scope: Set(scope.to_string()),
        project: Set(project.map(str::to_string)),
        ..Default::default()
    }
    .insert(conn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AdminError::Conflict(format!(
            "a token named {name:?} already exists (names stay taken after revocation, so \
             the audit log names one token each); choose another name"
        )),
        _ => AdminError::Db(e),
    })?;
    Ok(NewToken {
        id: row.id,
        name: row.name,
        secret,
    })
}

/// Revokes token `id` (on `conn`, the action's transaction); returns its name.
pub(super) async fn revoke<C: ConnectionTrait>(conn: &C, id: i64) -> Result<String, AdminError> {
    let row = api_token::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no token with id {id}")))?;
    if let Some(at) = row.revoked_at {
        return Err(AdminError::Conflict(format!(
            "token {id} ({}) was already revoked at {}",
            row.name,
            super::rfc3339(at)
        )));
    }
    let revoked = api_token::Entity::update_many()
        .col_expr(
            api_token::Column::RevokedAt,
            crate::time::now_millis().into(),
        )
        .filter(api_token::Column::Id.eq(id))
        .filter(api_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    if revoked.rows_affected == 0 {
        return Err(AdminError::Conflict(format!(
            "token {id} ({}) was revoked meanwhile",
            row.name
        )));
    }
    Ok(row.name)
}

/// Every named token, oldest first.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<TokenView>, DbErr> {
    Ok(api_token::Entity::find()
        .order_by_asc(api_token::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created_at: super::rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(super::rfc3339),
            revoked_at: t.revoked_at.map(super::rfc3339),
            scope: t.scope,
            project: t.project,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{AdminError, Authenticated, Credential, Scope, check_name};
    use crate::admin::Actor;

    #[test]
    fn scopes() {
        crate::names::assert_one_spelling::<Scope>();
        let token = |scope, project: Option<&str>| Authenticated {
            actor: Actor::token("t"),
            credential: Credential::Named(1),
            scope,
            project: project.map(str::to_string),
        };
        let admin = token(Scope::Admin, None);
        let release = token(Scope::Release, Some("demo"));
        let read = token(Scope::Read, Some("demo"));
        assert!(admin.may(Scope::Admin, "any") && admin.may(Scope::Release, "demo"));
        assert!(release.may(Scope::Release, "demo") && release.may(Scope::Read, "demo"));
        assert!(!release.may(Scope::Release, "other") && !release.may(Scope::Admin, "demo"));
        assert!(read.may(Scope::Read, "demo") && !read.may(Scope::Release, "demo"));
        assert_eq!(release.describe_scope(), "release (project demo)");
    }

    #[test]
    fn names() {
        for good in ["ci", "deploy-bot", "alice.laptop", "a_1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "has space",
            "semi;colon",
            "admin_token",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(check_name(bad), Err(AdminError::Invalid(_))),
                "{bad:?}"
            );
        }
    }
}
