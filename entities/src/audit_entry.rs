use sea_orm::entity::prelude::*;

/// One admin action (from the API, the admin page or the command line): who, what, on what.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// The token's name (`admin_token` for the configured one), or `cli:USER`.
    pub actor: String,
    /// `queue.pause`, `queue.flush`, `token.revoke`, …
    pub action: String,
    /// What it acted on: `queue`, `item 12`, `project webform`, `token 3 (ci)`.
    pub target: String,
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
