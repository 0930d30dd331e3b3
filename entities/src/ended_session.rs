use sea_orm::entity::prelude::*;

/// An admin page session ended by logging out: its cookie is refused from then on, though it
/// is still signed and unexpired. Kept until the cookie would have expired anyway.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ended_sessions")]
pub struct Model {
    /// The session's random id, as in its cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub sid: String,
    /// Unix seconds: when the cookie expires.
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
