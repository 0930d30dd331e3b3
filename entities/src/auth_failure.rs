use sea_orm::entity::prelude::*;

/// Failed admin authentications (a wrong Bearer token or login), one row per client address.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_failures")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub client_address: String,
    pub count: i64,
    /// Unix milliseconds.
    pub first_at: i64,
    pub last_at: i64,
    /// `bearer` or `login`.
    pub last_kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
