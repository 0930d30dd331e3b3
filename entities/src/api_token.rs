use sea_orm::entity::prelude::*;

/// A named API token (`baler token create`). Only the sha256 of the token is stored;
/// the token itself is shown once, when it is made. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique for ever: a revoked token keeps its name, so the audit log stays unambiguous.
    #[sea_orm(unique)]
    pub name: String,
    /// Lowercase hex sha256 of the token.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub created_at: i64,
    /// Updated at most once a minute.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `admin` (every admin route), `release` (request releases of `project` and follow their
    /// items) or `read` (follow `project`'s items).
    pub scope: String,
    /// The one project a `release` or `read` token may touch; none for `admin`.
    pub project: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
